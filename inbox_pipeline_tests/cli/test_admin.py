"""The admin command end to end: database, users, addresses, Kindle, plans, status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inbox_pipeline.cli import main
from inbox_pipeline.db.engine import make_engine, session_factory
from inbox_pipeline.db.intake import register_inbound, route_inbound, set_state
from inbox_pipeline.db.ledger import claim_delivery, mark_delivery_failed, mark_delivery_sent

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = REPO / ".venv" / "bin" / "inbox-pipeline"


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Runs ``inbox-pipeline ARGS`` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("INBOX_PIPELINE_DATABASE_URL", database_url)
    monkeypatch.setenv("INBOX_PIPELINE_INBOUND_DOMAIN", "In.Example.com")

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return run


def _error(result: tuple[int, str, str]) -> str:
    code, out, err = result
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_admin_end_to_end(cli, database_url: str) -> None:
    assert _error(cli("user", "list")).endswith("is empty: run `inbox-pipeline db upgrade` first")
    code, out, _ = cli("db", "upgrade")
    assert code == 0 and re.search(r"is at revision \w+ \(latest\)$", out.strip())
    assert cli("db", "upgrade")[0] == 0  # again: nothing to do, no error

    code, out, _ = cli("user", "add", "Alice@Example.com", "--kindle", "alice_k@kindle.com", "--tz", "Europe/Berlin",
                       "--delivery", "daily@07", "--plan", "pro")
    assert code == 0
    assert out.strip() == "added user #1 alice@example.com (Europe/Berlin, daily@07, plan pro, kindle alice_k@kindle.com)"
    code, out, _ = cli("user", "add", "bob@example.com", "--delivery", "weekly@sun@6")
    assert out.strip() == "added user #2 bob@example.com (UTC, weekly@sun@06, plan free, kindle none)"

    code, out, _ = cli("address", "add", "alice@example.com", "--label", "Money Stuff")
    assert code == 0 and re.fullmatch(r"money-stuff-[a-z2-7]{8}@in\.example\.com\n", out)
    alice_address = out.strip()
    code, out, _ = cli("address", "add", "2")
    assert re.fullmatch(r"bob-[a-z2-7]{8}@in\.example\.com\n", out)

    code, out, _ = cli("kindle", "set", "bob@example.com", "Bob_K@Kindle.com", "--no-verify")
    assert (code, out.strip()) == (0, "bob@example.com now receives EPUBs at bob_k@kindle.com")
    code, out, _ = cli("plan", "set", "team", "--monthly-limit", "200")
    assert (code, out.strip()) == (0, "plan team: 200 newsletters a month")
    code, out, _ = cli("user", "set", "bob@example.com", "--plan", "team", "--tz", "America/New_York")
    assert out.strip() == "updated user #2 bob@example.com (America/New_York, weekly@sun@06, plan team, kindle bob_k@kindle.com)"

    code, out, _ = cli("user", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "EMAIL", "TIMEZONE", "DELIVERY", "PLAN", "KINDLE", "ADDRESSES"]
    assert lines[1].split() == ["1", "alice@example.com", "Europe/Berlin", "daily@07", "pro", "alice_k@kindle.com", "1"]
    assert lines[2].split() == ["2", "bob@example.com", "America/New_York", "weekly@sun@06", "team", "bob_k@kindle.com", "1"]

    code, out, _ = cli("plan", "list")
    assert [line.split() for line in out.splitlines()] == [
        ["PLAN", "MONTHLY", "LIMIT", "USERS"], ["free", "50", "0"], ["pro", "1000", "1"],
        ["unlimited", "unlimited", "0"], ["team", "200", "1"],
    ]

    code, out, _ = cli("address", "disable", alice_address.upper())
    assert out.strip() == f"{alice_address} is disabled"
    code, out, _ = cli("address", "list", "alice@example.com")
    assert out.splitlines()[1].split() == [alice_address, "alice@example.com", "Money", "Stuff", "disabled"]

    # what the pipeline did, as status shows it
    engine = make_engine(database_url)
    now = datetime.now(timezone.utc)
    try:
        with session_factory(engine).begin() as s:
            e1, _ = register_inbound(s, storage_key="k1", size=1, sha256="0" * 64, received_at=now)
            e2, _ = register_inbound(s, storage_key="k2", size=1, sha256="0" * 64, received_at=now)
            e3, _ = register_inbound(s, storage_key="k3", size=1, sha256="0" * 64, received_at=now)
            route_inbound(s, e1.id, recipients=[alice_address], message_id="m1", content_sha256="c1", now=now)
            set_state(s, e2.id, "quarantined", "SES virus verdict FAIL")
            d1 = claim_delivery(s, item_kind="newsletter", item_id=1, recipient="bob_k@kindle.com", now=now)
            d2 = claim_delivery(s, item_kind="newsletter", item_id=2, recipient="bob_k@kindle.com", now=now)
            claim_delivery(s, item_kind="newsletter", item_id=3, recipient="bob_k@kindle.com", now=now)
            claim_delivery(s, item_kind="newsletter", item_id=4, recipient="bob_k@kindle.com",
                           now=now - timedelta(hours=2))
            mark_delivery_sent(s, d1.id, provider_message_id="p1")
            mark_delivery_failed(s, d2.id, reason="550", retryable=False)
    finally:
        engine.dispose()
    code, out, _ = cli("status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "users: 2"
    assert lines[1] == "inbound emails, last 24 hours: 3"
    states = [i for i, line in enumerate(lines) if re.fullmatch(r"  \w+ +\d+", line)]
    counts = dict(lines[i].split() for i in states)
    assert counts["unroutable"] == "1"  # alice's address is disabled
    assert counts["quarantined"] == "1" and counts["received"] == "1" and counts["routed"] == "0"
    # Each state's reasons follow its count, with the emails' ids.
    quarantined = next(i for i in states if lines[i].split()[0] == "quarantined")
    assert lines[quarantined + 1] == f"      1 x SES virus verdict FAIL (#{e2.id})"
    unroutable = next(i for i in states if lines[i].split()[0] == "unroutable")
    assert lines[unroutable + 1].startswith("      1 x ") and lines[unroutable + 1].endswith(f"(#{e1.id})")
    delivery_line = lines.index("deliveries, last 24 hours: 1 sent, 1 failed, 2 in progress")
    assert re.fullmatch(
        r"attention: 1 deliveries claimed over 15 minutes ago never finished \(#\d+\)", lines[delivery_line + 1]
    )
    assert e3.id  # registered, still "received"


def test_admin_error_messages(cli) -> None:
    assert cli("db", "upgrade")[0] == 0
    assert cli("user", "add", "carol@example.com")[0] == 0
    cases = [
        (("user", "add", "carol@EXAMPLE.com"), "inbox-pipeline: error: a user with email carol@example.com already exists"),
        (("user", "add", "dave@example.com", "--tz", "Europe/Berlinn"),
         "inbox-pipeline: error: unknown timezone 'Europe/Berlinn' (use an IANA name such as Europe/Berlin)"),
        (("user", "add", "dave@example.com", "--delivery", "daily@7pm"),
         "inbox-pipeline: error: bad delivery 'daily@7pm': use instant, daily@HH or weekly@DAY@HH (e.g. weekly@sun@07)"),
        (("user", "add", "dave@example.com", "--delivery", "weekly@someday@07"),
         "inbox-pipeline: error: bad delivery 'weekly@someday@07': use instant, daily@HH or weekly@DAY@HH (e.g. weekly@sun@07)"),
        (("user", "add", "dave at example.com"), "inbox-pipeline: error: 'dave at example.com' is not a valid email address"),
        (("user", "add", "dave@example.com", "--kindle", "dave"),
         "inbox-pipeline: error: 'dave' is not a valid Kindle address"),
        (("user", "add", "dave@example.com", "--plan", "gold"),
         "inbox-pipeline: error: unknown plan 'gold' (known: free, pro, unlimited)"),
        (("address", "add", "nobody@example.com"), "inbox-pipeline: error: no user 'nobody@example.com'"),
        (("address", "add", "99"), "inbox-pipeline: error: no user '99'"),
        (("address", "add", "carol@example.com", "--label", "***"),
         "inbox-pipeline: error: bad label '***': use letters or digits"),
        (("kindle", "set", "nobody@example.com", "n@kindle.com"), "inbox-pipeline: error: no user 'nobody@example.com'"),
        (("kindle", "set", "carol@example.com", "not-an-address"),
         "inbox-pipeline: error: 'not-an-address' is not a valid Kindle address"),
        (("address", "disable", "ghost@in.example.com"), "inbox-pipeline: error: no inbound address 'ghost@in.example.com'"),
        (("user", "set", "carol@example.com"), "inbox-pipeline: error: nothing to change: give --tz, --delivery or --plan"),
    ]
    for args, message in cases:
        assert _error(cli(*args)) == message, args
    # argparse's own refusals: usage plus one error line, exit 2, no traceback
    code, out, err = cli("plan", "set", "team", "--monthly-limit", "-5")
    assert code == 2 and err.strip().splitlines()[-1].endswith(
        "argument --monthly-limit: expected a whole number of 0 or more, got '-5'"
    )
    code, out, err = cli("user", "add")
    assert code == 2 and "the following arguments are required: EMAIL" in err
    # nothing was added by the failed commands
    code, out, _ = cli("user", "list")
    assert len(out.splitlines()) == 2


def test_bad_database_url_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    for url, start in [
        ("nosuchdb://x", "inbox-pipeline: error: bad INBOX_PIPELINE_DATABASE_URL:"),
        ("postgresql+psycopg2://postgres@127.0.0.1:1/x", "inbox-pipeline: error: database error:"),
        ("sqlite:////proc/no/such/dir/x.db", "inbox-pipeline: error: cannot open the database:"),
    ]:
        monkeypatch.setenv("INBOX_PIPELINE_DATABASE_URL", url)
        assert main(["status"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith(start), (url, err)


def test_console_script_with_default_sqlite_in_data_dir(tmp_path: Path) -> None:
    if not CONSOLE_SCRIPT.exists():
        pytest.skip("the console script is not installed: .venv/bin/pip install -e . --no-deps")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_PIPELINE_")}
    env["INBOX_PIPELINE_DATA_DIR"] = str(tmp_path / "data")
    env["INBOX_PIPELINE_INBOUND_DOMAIN"] = "in.example.com"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CONSOLE_SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)

    up = run("db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert (tmp_path / "data" / "inbox_pipeline.db").exists()  # the documented default
    added = run("user", "add", "erin@example.com", "--kindle", "erin@kindle.com", "--tz", "Asia/Kolkata",
                "--delivery", "weekly@mon@08", "--plan", "unlimited")
    assert added.returncode == 0 and "erin@example.com (Asia/Kolkata, weekly@mon@08, plan unlimited" in added.stdout
    address = run("address", "add", "erin@example.com", "--label", "Tech")
    assert re.fullmatch(r"tech-[a-z2-7]{8}@in\.example\.com\n", address.stdout)
    bad = run("user", "add", "erin@example.com", "--tz", "Nowhere/Land")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "inbox-pipeline: error: unknown timezone 'Nowhere/Land' (use an IANA name such as Europe/Berlin)\n"
    status = run("status")
    assert status.returncode == 0 and status.stdout.startswith("users: 1\ninbound emails, last 24 hours: 0\n")
    module = subprocess.run([sys.executable, "-m", "inbox_pipeline.cli", "user", "list"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert module.returncode == 0 and "erin@example.com" in module.stdout, module.stderr


def test_admin_input_is_validated_in_one_line(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_PIPELINE_SENDER", "Kindle Books <Kindle@Books.example>")
    assert cli("db", "upgrade")[0] == 0
    assert cli("user", "add", "carol@example.com")[0] == 0
    code, issued, _ = cli("address", "add", "carol@example.com")
    assert code == 0
    long_local = "a" * 65 + "@example.com"
    long_address = "a@" + ".".join(["d" * 50] * 5) + ".example"
    cases = [
        (("user", "add", "dave@example.com", "--delivery", "daily@²"),
         "inbox-pipeline: error: bad delivery 'daily@²': use instant, daily@HH or weekly@DAY@HH (e.g. weekly@sun@07)"),
        (("user", "add", "da\x07ve@example.com"),
         "inbox-pipeline: error: user email contains a control character (U+0007): 'da\\x07ve@example.com'"),
        (("user", "add", "dave@example.com", "--tz", "Europe/Berlin\n"),
         None),  # a trailing newline is whitespace, stripped: accepted
        (("user", "add", "eve@example.com", "--tz", "Europe/\u202eBerlin"),
         "inbox-pipeline: error: timezone contains a control character (U+202E): 'Europe/\\u202eBerlin'"),
        (("user", "add", long_local),
         f"inbox-pipeline: error: user email '{long_local}': the part before @ is 65 bytes (at most 64)"),
        (("user", "add", long_address),
         f"inbox-pipeline: error: user email '{long_address}' is {len(long_address)} bytes long (at most 254)"),
        (("user", "add", "someone@in.example.com"),
         "inbox-pipeline: error: user email someone@in.example.com cannot be used: it is on the inbound domain "
         "in.example.com (mail to it would come back to us in a loop)"),
        (("user", "add", "frank@example.com", "--kindle", "KINDLE@books.example"),
         "inbox-pipeline: error: Kindle address kindle@books.example cannot be used: it is the sender address our "
         "mail comes from (mail to it would come back to us in a loop)"),
        (("kindle", "set", "carol@example.com", "x@sub.in.example.com"),
         "inbox-pipeline: error: Kindle address x@sub.in.example.com cannot be used: it is on the inbound domain "
         "in.example.com (mail to it would come back to us in a loop)"),
        (("kindle", "set", "carol@example.com", "c@kindle.com", "--name", "my\nkindle"),
         "inbox-pipeline: error: device name contains a control character (U+000A): 'my\\nkindle'"),
        (("address", "add", "99999999999999999999999"),
         "inbox-pipeline: error: no user 99999999999999999999999 (ids go up to 2147483647)"),
        (("user", "set", "²", "--tz", "UTC"), "inbox-pipeline: error: no user '²'"),
        (("address", "add", "carol@example.com", "--label", "news\x00"),
         "inbox-pipeline: error: label contains a control character (U+0000): 'news\\x00'"),
        (("plan", "set", "te\x1bam", "--unlimited"),
         "inbox-pipeline: error: plan name contains a control character (U+001B): 'te\\x1bam'"),
    ]
    for args, message in cases:
        if message is None:
            assert cli(*args)[0] == 0, args
        else:
            assert _error(cli(*args)) == message, args
    # An inbound address issued on a domain we no longer receive on is still ours.
    monkeypatch.setenv("INBOX_PIPELINE_INBOUND_DOMAIN", "mail.example.net")
    assert _error(cli("kindle", "set", "carol@example.com", issued.strip().upper())) == (
        f"inbox-pipeline: error: Kindle address {issued.strip()} cannot be used: it is one of our inbound addresses "
        "(a mail loop)"
    )
    # argparse's type checks: usage plus one error line, exit 2.
    for args, tail in [
        (("plan", "set", "team", "--monthly-limit", "99999999999999999999"),
         "argument --monthly-limit: '99999999999999999999' is too large (at most 2147483647)"),
        (("plan", "set", "team", "--monthly-limit", "٣"),
         "argument --monthly-limit: expected a whole number of 0 or more, got '٣'"),
        (("status", "--hours", "9" * 30), f"argument --hours: '{'9' * 30}' is too large (at most 2147483647)"),
        (("status", "--hours", "1000000"), "argument --hours: expected 1 to 87840 hours, got '1000000'"),
        (("status", "--hours", "0"), "argument --hours: expected 1 to 87840 hours, got '0'"),
    ]:
        code, out, err = cli(*args)
        assert code == 2 and err.strip().splitlines()[-1].endswith(tail), (args, err)
    assert cli("status", "--hours", "87840")[0] == 0


_ANY_TEXT = st.text(max_size=300) | st.from_regex(r"\A[0-9²٣]{1,40}\Z") | st.sampled_from(
    ["daily@²", "weekly@sun@٣", "a" * 65 + "@example.com", "x@in.example.com", "9" * 400, "", " ", "-5", "1e9"]
)
_COMMANDS = [
    lambda x, y: ["user", "add", x],
    lambda x, y: ["user", "add", "a@example.com", "--delivery", x, "--tz", y],
    lambda x, y: ["user", "add", "b@example.com", "--kindle", x, "--plan", y],
    lambda x, y: ["user", "set", x, "--delivery", y],
    lambda x, y: ["address", "add", x, "--label", y],
    lambda x, y: ["address", "disable", x],
    lambda x, y: ["kindle", "set", "carol@example.com", x, "--name", y, "--no-verify"],
    lambda x, y: ["kindle", "verify", x],
    lambda x, y: ["plan", "set", x, "--monthly-limit", y],
    lambda x, y: ["status", "--hours", x],
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(_COMMANDS), x=_ANY_TEXT, y=_ANY_TEXT)
def test_no_admin_input_gives_a_traceback(cli, command, x: str, y: str) -> None:
    if cli("plan", "list")[0] != 0:  # the first example creates the schema and carol
        assert cli("db", "upgrade")[0] == 0 and cli("user", "add", "carol@example.com")[0] == 0
    code, out, err = cli(*command(x, y))  # the fixture asserts no "Traceback"
    # 0 done, 2 refused with a reason; 1 would be an exception that reached main's last resort.
    assert code in (0, 2), (command(x, y), code, err)
    if code == 2:
        assert err.strip().splitlines()[-1].startswith("inbox-pipeline"), err

def test_kindle_set_sends_a_test_book_and_verify_records_the_answer(cli, tmp_path: Path) -> None:
    from email import message_from_bytes, policy

    assert cli("db", "upgrade")[0] == 0
    assert cli("user", "add", "dana@example.com")[0] == 0
    code, out, _ = cli("kindle", "set", "dana@example.com", "dana@kindle.com")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0] == "dana@example.com now receives EPUBs at dana@kindle.com"
    assert lines[1].startswith("warning: dana@kindle.com looks easy to guess")
    assert lines[2].startswith("dana@kindle.com: test book sent; pending until Amazon answers")
    sent = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in (tmp_path / ".inbox_pipeline" / "outbox").rglob("*.eml")]
    to_kindle = [m for m in sent if m["To"] == "dana@kindle.com"]
    to_user = [m for m in sent if m["To"] == "dana@example.com"]
    assert len(to_kindle) == 1 and len(to_user) == 1
    (book,) = list(to_kindle[0].iter_attachments())
    assert book.get_content_type() == "application/epub+zip" and ".k-" in book.get_filename()
    assert "kindle@localhost" in to_user[0].get_body(("plain",)).get_content()
    code, out, _ = cli("status")
    assert "kindle checks: 1 pending" in out.splitlines()
    assert "deliveries, last 24 hours: 0 sent, 0 failed, 0 in progress" in out.splitlines()  # a test book is none
    code, out, _ = cli("kindle", "verify", "dana@example.com", "--arrived")
    assert (code, out.strip()) == (0, "dana@kindle.com: verified")
    assert "kindle checks: 1 verified" in cli("status")[1].splitlines()
    assert _error(cli("kindle", "verify", "nobody@example.com")) == "inbox-pipeline: error: no user 'nobody@example.com'"
