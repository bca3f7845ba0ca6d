"""``python -m inbox_pipeline.demo [--samples | --no-samples | --amazon-says e999|not-approved]``: migrate, seed
the demo user, drop samples; or play Amazon: answer the newest book in the outbox with a notice in the inbox."""

from __future__ import annotations

import argparse
import sys

from inbox_pipeline.config import Settings, load_dotenv_once
from inbox_pipeline.demo import drop_samples, seed_demo
from inbox_pipeline.demo.amazon import TEXTS, answer_newest_book


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inbox_pipeline.demo", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--samples", action="store_true", help="drop the samples again (new Message-IDs)")
    group.add_argument("--no-samples", action="store_true", help="only migrate and seed the demo user")
    group.add_argument(
        "--amazon-says", choices=sorted(TEXTS),
        help="play Amazon: write its notice for the newest book in the outbox into the inbox (to the sender address)",
    )
    args = parser.parse_args(argv)
    load_dotenv_once()
    settings = Settings.from_env()
    if args.amazon_says:
        try:
            print(answer_newest_book(settings, args.amazon_says))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    seed = seed_demo(settings)
    print(f"demo user {seed.user_email}: inbound address {seed.inbound_address}, Kindle {seed.kindle}")
    if args.no_samples or not (seed.created or args.samples):
        print("samples: not dropped (the demo user existed; --samples drops them again)")
        return 0
    keys = drop_samples(settings, seed.inbound_address, fresh_ids=args.samples)
    print(f"dropped {len(keys)} sample newsletters into {settings.inbox}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
