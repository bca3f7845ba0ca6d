"""Admin sub-commands: ``db``, ``user``, ``address``, ``kindle``, ``plan``, ``status`` (``explain``: cli/explain.py).

The database is INBOX_PIPELINE_DATABASE_URL (default: a SQLite file in
INBOX_PIPELINE_DATA_DIR); new addresses use INBOX_PIPELINE_INBOUND_DOMAIN.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from inbox_pipeline.cli.errors import CliError
from inbox_pipeline.cli.validate import (
    OwnAddresses,
    control_free,
    count_arg,
    hours_arg,
    mail_address,
    user_ref,
)
from inbox_pipeline.config import Settings
from inbox_pipeline.db.engine import current_revision, head_revision, make_engine, session_factory, upgrade
from inbox_pipeline.db.errors import DbInputError
from inbox_pipeline.db.intake import count_by_state
from inbox_pipeline.db.ledger import LEASE, count_deliveries, stale_deliveries
from inbox_pipeline.db.models import utcnow
from inbox_pipeline.db.pace import pace_counters
from inbox_pipeline.db.story import reasons_by_state
from inbox_pipeline.db.users import (
    add_user,
    addresses_with_owners,
    count_users,
    format_delivery,
    get_user,
    issue_address,
    kindle_checks,
    list_plans,
    list_users,
    resolve_address,
    set_address_enabled,
    set_kindle,
    set_plan,
    update_user,
    users_per_plan,
)
from inbox_pipeline.services.context import PermanentStepError, Pipeline

Handler = Callable[..., int]


def register(subparsers: Any) -> None:
    db = _actions(subparsers, "db", "the app database")
    _action(db, "upgrade", cmd_db_upgrade, "create or migrate the database schema to the latest version")
    _action(db, "current", cmd_db_current, "show the schema version")

    user = _actions(subparsers, "user", "users")
    p = _action(user, "add", cmd_user_add, "add a user")
    p.add_argument("email", metavar="EMAIL", help="the user's own email (notifications, confirmations)")
    p.add_argument("--kindle", metavar="ADDR", help="Send-to-Kindle address")
    p.add_argument("--tz", default="UTC", metavar="ZONE", help="IANA timezone (default UTC)")
    p.add_argument("--delivery", default="instant", metavar="SPEC", help="instant | daily@HH | weekly@DAY@HH")
    p.add_argument("--plan", default="free", metavar="NAME", help="plan name (default free)")
    _action(user, "list", cmd_user_list, "list users")
    p = _action(user, "set", cmd_user_set, "change a user's timezone, delivery or plan")
    p.add_argument("user", metavar="USER", help="email or id")
    p.add_argument("--tz", metavar="ZONE")
    p.add_argument("--delivery", metavar="SPEC", help="instant | daily@HH | weekly@DAY@HH")
    p.add_argument("--plan", metavar="NAME")

    address = _actions(subparsers, "address", "inbound addresses")
    p = _action(address, "add", cmd_address_add, "issue a new inbound address and print it")
    p.add_argument("user", metavar="USER", help="email or id")
    p.add_argument("--label", metavar="L", help="readable start of the address, e.g. the newsletter's name")
    p = _action(address, "list", cmd_address_list, "list inbound addresses")
    p.add_argument("user", metavar="USER", nargs="?", help="only this user's (email or id)")
    for action, enabled in (("disable", False), ("enable", True)):
        p = _action(
            address, action, functools.partial(cmd_address_enable, enabled=enabled), f"{action} an inbound address"
        )
        p.add_argument("address", metavar="ADDRESS")

    kindle = _actions(subparsers, "kindle", "Kindle devices")
    p = _action(kindle, "set", cmd_kindle_set, "set the user's Send-to-Kindle address")
    p.add_argument("user", metavar="USER", help="email or id")
    p.add_argument("address", metavar="ADDR", help="e.g. name_abc@kindle.com")
    p.add_argument("--name", metavar="NAME", help="a name for the device")
    p.add_argument("--no-verify", action="store_true", help="do not send a test book now")
    p = _action(
        kindle,
        "verify",
        cmd_kindle_verify,
        "send a test book, tell the user the address to approve, and resend what Amazon refused before",
    )
    p.add_argument("user", metavar="USER", help="email or id")
    p.add_argument("--arrived", action="store_true", help="the user saw the test book on their Kindle")

    plan = _actions(subparsers, "plan", "plans and their monthly limits")
    p = _action(plan, "set", cmd_plan_set, "create a plan or change its monthly limit")
    p.add_argument("name", metavar="NAME")
    limit = p.add_mutually_exclusive_group(required=True)
    limit.add_argument("--monthly-limit", type=count_arg, metavar="N", help="newsletters per month")
    limit.add_argument("--unlimited", action="store_true", help="no monthly limit")
    _action(plan, "list", cmd_plan_list, "list plans")

    p = _action(subparsers, "status", cmd_status, "emails per state with their reasons, and deliveries, recently")
    p.add_argument("--hours", type=hours_arg, default=24, metavar="N", help="look back N hours (default 24)")
    p.add_argument("--reasons", type=count_arg, default=3, metavar="N",
                   help="the N most frequent reasons per state (default 3; 0: counts only)")


def _actions(subparsers: Any, command: str, help: str) -> Any:
    """The sub-command ``command`` and the parser of its actions (``inbox-pipeline user add ...``)."""
    return subparsers.add_parser(command, help=help).add_subparsers(
        dest=f"{command}_command", metavar="ACTION", required=True
    )


def _action(group: Any, name: str, func: Handler, help: str) -> argparse.ArgumentParser:
    """The action ``name`` of a sub-command, run by ``func``; its arguments are added to what is returned."""
    parser = group.add_parser(name, help=help)
    parser.set_defaults(func=func)
    return parser


# --- plumbing -------------------------------------------------------------------


def _settings() -> Any:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise CliError(f"bad configuration: {exc}") from None


def _shown_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _db_errors(func: Handler) -> Handler:
    """Database and input errors become one line (CliError), never a traceback."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace, **kwargs: Any) -> int:
        try:
            return func(args, **kwargs)
        except DbInputError as exc:
            raise CliError(str(exc)) from None
        except (ArgumentError, NoSuchModuleError) as exc:
            raise CliError(f"bad INBOX_PIPELINE_DATABASE_URL: {exc}") from None
        except DBAPIError as exc:
            first = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc).strip() else type(exc).__name__
            raise CliError(f"database error: {first}") from None
        except OSError as exc:  # e.g. the SQLite file's folder cannot be created
            raise CliError(f"cannot open the database: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None

    return wrapper


def _in_session(func: Handler) -> Handler:
    """A command whose work is one transaction (``_session``): it is given the session after ``args``.

    ``kindle set`` and ``kindle verify`` open their own: the test book goes out after the commit.
    """

    @_db_errors
    @functools.wraps(func)
    def wrapper(args: argparse.Namespace, **kwargs: Any) -> int:
        with _session() as session:
            return func(args, session, **kwargs)

    return wrapper


@contextmanager
def _session() -> Iterator[Any]:
    """A transaction on the configured database, refused if the schema is not current."""
    url = _settings().database_url
    engine = make_engine(url)
    try:
        current = current_revision(engine)
        if current != head_revision():
            state = "empty" if current is None else f"at revision {current}"
            raise CliError(
                f"the database {_shown_url(url)} is {state}: run `inbox-pipeline db upgrade` first"
            )
        with session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


def _refuse_inbound_address(session: Any, address: str, what: str) -> None:
    """An inbound address of ours (on any domain it was issued for) would loop mail back to us."""
    if resolve_address(session, address) is not None:
        raise CliError(f"{what} {address} cannot be used: it is one of our inbound addresses (a mail loop)")


def _describe_user(user: Any) -> str:
    kindle = user.kindle.email if user.kindle else "none"
    return f"{user.email} ({user.timezone}, {format_delivery(user)}, plan {user.plan.name}, kindle {kindle})"


# --- commands -------------------------------------------------------------------


@_db_errors
def cmd_db_upgrade(args: argparse.Namespace) -> int:
    url = _settings().database_url
    revision = upgrade(url)
    print(f"database {_shown_url(url)} is at revision {revision} (latest)")
    return 0


@_db_errors
def cmd_db_current(args: argparse.Namespace) -> int:
    url = _settings().database_url
    engine = make_engine(url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    note = "latest" if current == head else f"latest is {head}: run `inbox-pipeline db upgrade`"
    print(f"database {_shown_url(url)} is at revision {current or '(empty)'} ({note})")
    return 0


@_in_session
def cmd_user_add(args: argparse.Namespace, session: Any) -> int:
    ours = OwnAddresses.from_settings(_settings())
    email = mail_address(args.email, "user email", ours=ours)
    kindle = mail_address(args.kindle, "Kindle address", ours=ours) if args.kindle is not None else None
    tz, delivery, plan = (control_free(v, what) for v, what in ((args.tz, "timezone"), (args.delivery, "delivery"),
                                                                  (args.plan, "plan")))
    _refuse_inbound_address(session, email, "user email")
    if kindle:
        _refuse_inbound_address(session, kindle, "Kindle address")
    user = add_user(session, email=email, timezone=tz, delivery=delivery, plan=plan, kindle=kindle)
    session.refresh(user)
    print(f"added user #{user.id} {_describe_user(user)}")
    return 0


@_in_session
def cmd_user_list(args: argparse.Namespace, session: Any) -> int:
    users = list_users(session)
    if not users:
        print("no users yet: add one with `inbox-pipeline user add EMAIL`")
        return 0
    _print_table(
        ("ID", "EMAIL", "TIMEZONE", "DELIVERY", "PLAN", "KINDLE", "ADDRESSES"),
        [
            (str(u.id), u.email, u.timezone, format_delivery(u), u.plan.name,
             u.kindle.email if u.kindle else "-", str(sum(1 for a in u.addresses if a.enabled)))
            for u in users
        ],
    )
    return 0


@_in_session
def cmd_user_set(args: argparse.Namespace, session: Any) -> int:
    if args.tz is None and args.delivery is None and args.plan is None:
        raise CliError("nothing to change: give --tz, --delivery or --plan")
    tz, delivery, plan = (None if v is None else control_free(v, what)
                          for v, what in ((args.tz, "timezone"), (args.delivery, "delivery"), (args.plan, "plan")))
    user = get_user(session, user_ref(args.user))
    user = update_user(session, user.id, timezone=tz, delivery=delivery, plan=plan)
    print(f"updated user #{user.id} {_describe_user(user)}")
    return 0


@_in_session
def cmd_address_add(args: argparse.Namespace, session: Any) -> int:
    domain = _settings().inbound_domain
    label = control_free(args.label, "label", max_len=64) if args.label is not None else None
    user = get_user(session, user_ref(args.user))
    address = issue_address(session, user.id, label, domain=domain)
    print(address.address)
    return 0


@_in_session
def cmd_address_list(args: argparse.Namespace, session: Any) -> int:
    owner = get_user(session, user_ref(args.user)).id if args.user else None
    rows = [
        (address.address, email, address.label or "-", "enabled" if address.enabled else "disabled")
        for address, email in addresses_with_owners(session, owner)
    ]
    if not rows:
        print("no inbound addresses yet: issue one with `inbox-pipeline address add USER`")
        return 0
    _print_table(("ADDRESS", "USER", "LABEL", "STATE"), rows)
    return 0


@_in_session
def cmd_address_enable(args: argparse.Namespace, session: Any, *, enabled: bool) -> int:
    address = mail_address(args.address, "inbound address")
    row = set_address_enabled(session, address, enabled)
    print(f"{row.address} is {'enabled' if enabled else 'disabled'}")
    return 0


@_db_errors
def cmd_kindle_set(args: argparse.Namespace) -> int:
    kindle = mail_address(args.address, "Kindle address", ours=OwnAddresses.from_settings(_settings()))
    name = control_free(args.name, "device name", max_len=64) if args.name is not None else None
    with _session() as session:
        user = get_user(session, user_ref(args.user))
        _refuse_inbound_address(session, kindle, "Kindle address")
        device = set_kindle(session, user.id, kindle, name=name)
        print(f"{user.email} now receives EPUBs at {device.email}")
        user_id = user.id
    return 0 if args.no_verify else _verify(user_id, arrived=False)


@_db_errors
def cmd_kindle_verify(args: argparse.Namespace) -> int:
    with _session() as session:
        user_id = get_user(session, user_ref(args.user)).id
    return _verify(user_id, arrived=args.arrived)


def _verify(user_id: int, *, arrived: bool) -> int:
    # Lazy: the Kindle check builds a test book (the converter: about 0.5 s of imports), which the
    # other commands, and `--help`, would pay at the top of this module.
    from inbox_pipeline.services.kindle_check import CHECK_WINDOW, verify_kindle

    try:
        with Pipeline.from_settings(_settings()) as pipeline:
            outcome = verify_kindle(pipeline, user_id, arrived=arrived)
    except PermanentStepError as exc:
        raise CliError(str(exc)) from None
    if arrived:
        print(f"{outcome.kindle}: verified")
        return 0
    for warning in outcome.warnings:
        print(f"warning: {warning}")
    if outcome.sent != "sent":
        print(f"{outcome.kindle}: {outcome.state}: the test book could not be sent ({outcome.sent})")
        return 1
    minutes = int(CHECK_WINDOW.total_seconds() // 60)
    print(
        f"{outcome.kindle}: test book sent; {outcome.state} until Amazon answers "
        f"(unconfirmed after {minutes} minutes without a notice)"
        + (f"; {outcome.resent} refused newsletter(s) sent again" if outcome.resent else "")
    )
    return 0


@_in_session
def cmd_plan_set(args: argparse.Namespace, session: Any) -> int:
    name = control_free(args.name, "plan name", max_len=64)
    plan = set_plan(session, name, monthly_limit=None if args.unlimited else args.monthly_limit)
    limit = "unlimited" if plan.monthly_limit is None else f"{plan.monthly_limit} newsletters a month"
    print(f"plan {plan.name}: {limit}")
    return 0


@_in_session
def cmd_plan_list(args: argparse.Namespace, session: Any) -> int:
    users = users_per_plan(session)
    _print_table(
        ("PLAN", "MONTHLY LIMIT", "USERS"),
        [
            (plan.name, "unlimited" if plan.monthly_limit is None else str(plan.monthly_limit),
             str(users.get(plan.id, 0)))
            for plan in list_plans(session)
        ],
    )
    return 0


@_in_session
def cmd_status(args: argparse.Namespace, session: Any) -> int:
    now = utcnow()
    since = now - timedelta(hours=args.hours)
    period = "last 24 hours" if args.hours == 24 else f"last {args.hours} hours"
    states = count_by_state(session, since=since)
    # Delivered emails' reasons only say where the book went; every other state's say why.
    reasons = reasons_by_state(session, since=since, top=args.reasons) if args.reasons else {}
    reasons.pop("delivered", None)
    deliveries = count_deliveries(session, since=since)
    stale = stale_deliveries(session, now=now)
    users = count_users(session)
    checks, rejected_kindles = kindle_checks(session)
    paced = pace_counters(session)
    print(f"users: {users}")
    print(f"inbound emails, {period}: {sum(states.values())}")
    width = max(len(s) for s in states)
    for state, count in states.items():
        print(f"  {state:<{width}}  {count}")
        shown = 0
        for entry in reasons.get(state, []):
            ids = ", ".join(f"#{i}" for i in entry.email_ids)
            more = ", ..." if entry.count > len(entry.email_ids) else ""
            print(f"      {entry.count} x {_one_line(entry.reason)} ({ids}{more})")
            shown += entry.count
        if reasons.get(state) and count > shown:
            print(f"      {count - shown} with other reasons")
    rejected = f", {deliveries['rejected']} rejected by Amazon" if deliveries.get("rejected") else ""
    print(
        f"deliveries, {period}: {deliveries['sent']} sent, {deliveries['failed']} failed{rejected}, "
        f"{deliveries['claimed']} in progress"
    )
    if stale:
        minutes = int(LEASE.total_seconds() // 60)
        ids = ", ".join(f"#{d.id}" for d in stale[:10])
        print(f"attention: {len(stale)} deliveries claimed over {minutes} minutes ago never finished ({ids})")
    if set(checks) - {"unchecked"}:  # once anyone ran `kindle verify`
        print("kindle checks: " + ", ".join(f"{n} {state}" for state, n in sorted(checks.items())))
        for address, reason in rejected_kindles[:10]:
            print(f"  rejected {address}: {_one_line(reason)}")
    if paced.sends or paced.refused:  # since the database was made: the shared send-rate limiter
        refused = f", {paced.refused} refused (daily quota spent)" if paced.refused else ""
        print(
            f"send pacing, all time: {paced.sends} sends paced, {paced.held} held back "
            f"({paced.held_seconds:.1f} s in all){refused}"
        )
    return 0


def _one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
