"""Link-roundup newsletters: the content is a list of linked headlines with one-line summaries.

Their headlines are short, fully linked and often at the foot of the issue, which is where
navigation and footers sit too; they must stay. Written for this project.
"""

from __future__ import annotations

from inbox_pipeline.core.clean import clean_html

from ._support import assert_dropped, assert_kept

ITEMS = [
    ("Terms of service changes that quietly let an app read your photos", "A line-by-line reading of the new wording."),
    ("Copyright office rejects a second claim for a machine-made comic", "The ruling turns on who chose each panel."),
    ("Powered by tides: a village that runs its bakery on the harbour current", "Two turbines under the pier, and bread at six."),
    ("Why the privacy policy of your car is longer than its manual", "We counted the words in twelve of them."),
    ("Follow the money: where a ferry ticket's four euros go", "Fuel, crew, port fees and a surprising insurance bill."),
    ("Share of trains arriving on time rose to 91 percent in March", "The best month since records began in 2009."),
    # Short headlines that begin like a button ("Share ...", "Follow ...")
    ("Share prices slide as the port closes", "Three shipping firms lost a tenth of their value."),
    ("Follow the last ferry", "A photo essay from the final crossing of the season."),
    ("Subscribe or perish: the local paper's new model", "Paywalls, and what the readers said about them."),
]
FOOTER = (
    "<p>You are receiving this because you subscribed to Harbour Links. "
    "<a href='https://links.example.com/unsub?u=1'>Unsubscribe</a></p>"
    "<p>Harbour Links, 40 Quay Street, Portwick, ME 04101</p>"
)


def cooperpress_shape() -> str:
    """One table row per item: a bold linked headline, the summary in the same cell."""
    rows = "".join(
        f"<tr><td style='padding:8px 0'><a href='https://news.example.org/{i}' style='font-weight:bold'>{title}</a>"
        f"<br><span style='color:#555'>{summary}</span></td></tr>"
        for i, (title, summary) in enumerate(ITEMS)
    )
    intro = "<tr><td><p>Six stories from the week, picked by the editors of Harbour Links.</p></td></tr>"
    return f"<html><body><table width='600'>{intro}{rows}<tr><td>{FOOTER}</td></tr></table></body></html>"


def beehiiv_shape() -> str:
    """A list: each item a linked heading paragraph, then a summary paragraph."""
    items = "".join(
        f"<li><p><a href='https://news.example.org/{i}'><b>{title}</b></a></p><p>{summary}</p></li>"
        for i, (title, summary) in enumerate(ITEMS)
    )
    return (
        '<html><body><div role="article"><table role="none"><tr><td class="dd">'
        f"<p>Six stories from the week, picked by the editors of Harbour Links.</p><ul>{items}</ul>"
        f'</td></tr><tr><td class="b">{FOOTER}</td></tr></table></div></body></html>'
    )


def headline_block_shape() -> str:
    """Headings linked to the story, each followed by its summary paragraph."""
    items = "".join(
        f"<h3><a href='https://news.example.org/{i}'>{title}</a></h3><p>{summary}</p>" for i, (title, summary) in enumerate(ITEMS)
    )
    return f"<html><body><div><p>Six stories from the week, picked by the editors of Harbour Links.</p>{items}{FOOTER}</div></body></html>"


def check(html: str, headers=()) -> None:
    article = clean_html(html, headers=headers)
    assert_kept(article, *(title for title, _ in ITEMS), *(summary for _, summary in ITEMS))
    assert_dropped(article, "You are receiving this because", "Unsubscribe", "40 Quay Street")


def test_a_roundup_in_table_rows_keeps_every_headline_and_summary() -> None:
    check(cooperpress_shape())


def test_a_roundup_as_a_list_keeps_every_headline_and_summary() -> None:
    check(beehiiv_shape(), headers=(("x-beehiiv-type", "newsletter"),))


def test_a_roundup_of_linked_headings_keeps_every_headline_and_summary() -> None:
    check(headline_block_shape())


def test_a_button_styled_share_link_is_still_a_button() -> None:
    """The same words drawn as a button are a call to action, whatever follows them."""
    button = (
        "<p class='button-wrapper'><a class='button primary' style='display:inline-block;padding:12px 20px' "
        "href='https://links.example.com/?utm_content=share&action=share'><span>Share Harbour Links Weekly</span></a></p>"
        "<p>Disclaimer: the editors hold no shares in any of the firms above.</p>"
    )
    html = headline_block_shape().replace(FOOTER, button + FOOTER)
    article = clean_html(html)
    assert_dropped(article, "Share Harbour Links Weekly")
    assert_kept(article, "Share prices slide as the port closes", "Disclaimer: the editors hold no shares")
