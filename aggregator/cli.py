"""Command line: `aggregator init | build | fetch | check | topics | explain | serve`.

Each subcommand is one `Command` in COMMANDS: its help texts, its options and the
function that runs it. `main` parses, runs and turns the typed errors into exit codes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from aggregator import __version__
from aggregator.config import Config, load_config
from aggregator.errors import (
    AggregatorError,
    ConfigError,
    Problem,
    StateUnavailable,
    UploadFailed,
    WorkerDied,
    WriteFailed,
)
from aggregator.lock import (
    BuildLocked,
    build_lock,
    database_build_lock,
    lock_holder,
    lock_path,
)
from aggregator.pipeline import build
from aggregator.report import BuildReport
from aggregator.state import unusable_state
from aggregator.wording import plural

EXIT_OK = 0
EXIT_REJECTED = 1  # some input was rejected; everything else was still published
EXIT_USAGE = 2  # bad command line or configuration; nothing was written
EXIT_LOCKED = 3  # another build held the lock past [build] lock_timeout; nothing was done
EXIT_FAILED = 4  # the build stopped part-way (a worker process died); rerun it
EXIT_WRITE_FAILED = 5  # an output file could not be written (disk full, I/O error)
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it

EXIT_TEXTS = {
    EXIT_OK: "all well",
    EXIT_REJECTED: "some records were rejected or sources failed (the rest is still used)",
    EXIT_USAGE: "usage or configuration error (nothing written)",
    EXIT_LOCKED: "another build held the lock for [build] lock_timeout seconds",
    EXIT_FAILED: "a worker process died, or the state database failed, mid-build; every "
    "file written is whole, rerun",
    EXIT_WRITE_FAILED: "an output file could not be written (disk full, I/O error)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand. To add one, write its `options` and `run` and list it in COMMANDS."""

    name: str
    summary: str  # one line, in `aggregator --help`
    description: str  # the first paragraph of `aggregator NAME --help`
    examples: tuple[str, ...]
    exit_codes: tuple[int, ...]
    options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

    def epilog(self) -> str:
        codes = "\n".join(f"  {code:<3}  {EXIT_TEXTS[code]}" for code in self.exit_codes)
        examples = "\n".join(f"  {example}" for example in self.examples)
        return f"exit codes:\n{codes}\n\nexamples:\n{examples}"


# --- options shared by several commands -------------------------------------------------


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("config.toml"), metavar="PATH",
                        help="configuration file (default: ./config.toml)")  # fmt: skip


def _output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="output folder (default: [site] output_dir)")  # fmt: skip


def _noise_options(parser: argparse.ArgumentParser, verbose: str | None) -> None:
    noise = parser.add_mutually_exclusive_group()
    if verbose is not None:
        noise.add_argument("-v", "--verbose", action="store_true", help=verbose)
    noise.add_argument("-q", "--quiet", action="store_true",
                       help="print only errors (no warnings, no summary)")  # fmt: skip


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


# --- reporting ---------------------------------------------------------------------------


def _problems(report: BuildReport, args: argparse.Namespace, seen: set[str] | None = None) -> None:
    """Each problem on one line; `seen`: lines an earlier round of `serve` showed, which
    are not repeated."""
    for problem in report.problems:
        line = str(problem)
        if seen is not None:
            if line in seen:
                continue
            seen.add(line)
        if problem.severity == "error" or not args.quiet:
            print(line, file=sys.stderr)


def _report(
    report: BuildReport,
    args: argparse.Namespace,
    seen: set[str] | None = None,
    *,
    summary: bool = True,
) -> int:
    """Print the problems and (with `summary`) the files written and the summary; the
    exit code."""
    _problems(report, args, seen)
    if summary and getattr(args, "verbose", False):
        for path in report.written_paths:
            print(f"wrote {path}")
        if report.uploads is not None:
            for relative in report.uploads.uploaded:
                print(f"uploaded {report.uploads.destination}/{relative}")
            for relative in report.uploads.deleted:
                print(f"deleted {report.uploads.destination}/{relative}")
    if summary and not args.quiet:
        print(report.summary())
    return _exit_code(report)


def _exit_code(report: BuildReport) -> int:
    return EXIT_REJECTED if report.rejected else EXIT_OK


def _warn(args: argparse.Namespace) -> Callable[[str], None]:
    def warn(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    return warn


def _config_errors(exc: ConfigError) -> None:
    for error in exc.errors:
        print(f"aggregator: config error: {error}", file=sys.stderr)


# --- init --------------------------------------------------------------------------------


def _init_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", type=Path, default=Path("."), metavar="DIR",
                        help="where to create the site (default: the current folder)")  # fmt: skip
    parser.add_argument("--title", help="the site's title (default: from the folder name)")


def _init(args: argparse.Namespace) -> int:
    from aggregator.newsite import SiteExists, create_site

    try:
        site = create_site(args.folder, args.title)
    except SiteExists as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"aggregator: cannot create the site: {exc.filename or args.folder}: "
              f"{exc.strerror or exc}", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    config, record, ignore = site.files
    print(f"created a new site in {site.folder}:")
    print(f"  {config}  settings: set [site] title and base_url; every table is explained")
    print(f"  {record}  an example record")
    print(f"  {ignore}  keeps the output folder and the build cache out of git")
    print("next:")
    if site.folder != Path("."):
        print(f"  cd {site.folder}")
    print("  aggregator build     # writes feeds/")
    print("  aggregator serve     # preview at http://127.0.0.1:8000/")
    return EXIT_OK


# --- build -------------------------------------------------------------------------------


def _build_options(parser: argparse.ArgumentParser) -> None:
    _config_option(parser)
    _output_option(parser)
    parser.add_argument("--full", action="store_true",
                        help="ignore the caches: read and render everything")  # fmt: skip
    parser.add_argument("--accept-shrink", action="store_true",
                        help="publish sources that shrank past [build] max_shrink since the "
                             "last build")  # fmt: skip
    parser.add_argument("-n", "--dry-run", action="store_true",
                        help="show which feeds and items would change; write nothing "
                             "(not even the state file)")  # fmt: skip
    parser.add_argument("--changed-paths", type=Path, metavar="FILE",
                        help="write the URL paths this build changed (written, uploaded or "
                             "deleted), one per line, for CDN invalidation")  # fmt: skip
    _noise_options(parser, "list every file written, uploaded and deleted")


def _build(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.dry_run:
        return _dry_run(config, args)
    try:
        report = _locked_build(config, args.output, args)
    except UploadFailed as exc:
        _changed(config, exc.changed, args)  # what the bucket did take is live: tell them
        raise
    code = _report(report, args)
    if not _changed(config, report.changed_paths, args):
        code = EXIT_WRITE_FAILED
    _deliver(config, args)
    return code


def _changed(config: Config, changed: Sequence[str], args: argparse.Namespace) -> bool:
    """Hand the one list of changed paths on: to `--changed-paths FILE`, and its feeds to
    the WebSub hub. False if the file could not be written."""
    written = True
    target = getattr(args, "changed_paths", None)
    if target is not None:
        from aggregator.output.changes import write_changed_paths

        try:
            write_changed_paths(target, config.site.base_url, changed)
        except OSError as exc:
            print(f"aggregator: write failed: {exc.filename or target}: "
                  f"{exc.strerror or exc}; the list of changed paths was not written",
                  file=sys.stderr)  # fmt: skip
            written = False
    _announce(config, changed, args)
    return written


def _dry_run(config: Config, args: argparse.Namespace) -> int:
    import time

    from aggregator.curate import plan_site
    from aggregator.dryrun import ADDED, REMOVED, REWRITTEN, UNCHANGED, describe, dry_run

    started = time.perf_counter()
    site = plan_site(config)
    output = args.output or config.site.output_dir
    run = dry_run(config, site, output)
    report = site.report(time.perf_counter() - started)
    _problems(report, args)
    if not args.quiet:
        for line in describe(run):
            print(line)
        print(
            f"dry run: {plural(run.count(ADDED), 'feed')} added, {run.count(REWRITTEN)} "
            f"rewritten, {run.count(REMOVED)} removed, {run.count(UNCHANGED)} unchanged; "
            f"{plural(run.entering, 'item')} in, {run.leaving} out; "
            f"{plural(run.written, 'file')} would be written and {run.deleted} deleted; "
            "nothing written "
            f"({report.seconds:.2f} s)"
        )
    return _exit_code(report)


def _announce(config: Config, changed: Sequence[str], args: argparse.Namespace) -> None:
    """WebSub: tell the hub which feeds changed. Never changes the exit code."""
    if not config.site.websub_hub:
        return
    from aggregator.websub import announce_build  # the HTTP stack, only when needed

    result = announce_build(config, changed, _warn(args))
    if result is not None and result.announced and getattr(args, "verbose", False):
        print(f"announced {plural(len(result.announced), 'feed URL')} to "
              f"{config.site.websub_hub}")  # fmt: skip


def _deliver(config: Config, args: argparse.Namespace) -> None:
    """Webhooks: POST each changed feed's new items. Never changes the exit code."""
    if not config.webhooks:
        return
    from aggregator.webhooks import deliver_build  # the HTTP stack, only when needed

    result = deliver_build(config, _warn(args))
    if result is not None and result.delivered and getattr(args, "verbose", False):
        print(f"delivered {plural(result.delivered, 'webhook POST')}")


def _locked_build(config: Config, output: Path | None, args: argparse.Namespace) -> BuildReport:
    """Build while holding the lock, so overlapping cron runs never interleave."""
    url = config.state.url
    path = lock_path(config.build.state_path)
    holder = path if url is None else lock_holder(url)

    def waiting() -> None:
        if not args.quiet:
            print(f"aggregator: another build holds {holder}; waiting up to "
                  f"{config.build.lock_timeout:g} s", file=sys.stderr)  # fmt: skip

    with ExitStack() as stack:
        try:
            if url is None:
                stack.enter_context(build_lock(path, config.build.lock_timeout, waiting))
            else:  # builders on any machine: the database's advisory lock
                stack.enter_context(database_build_lock(url, config.build.lock_timeout,
                                                        waiting))  # fmt: skip
        except (OSError, StateUnavailable) as exc:
            raise unusable_state(config, exc) from None
        return build(config, output, write=True, full=getattr(args, "full", False),
                     accept_shrink=getattr(args, "accept_shrink", False))  # fmt: skip


# --- fetch -------------------------------------------------------------------------------


def _fetch_options(parser: argparse.ArgumentParser) -> None:
    _config_option(parser)
    parser.add_argument("--once", action="store_true",
                        help="one pass: fetch each due source once, then exit")  # fmt: skip
    parser.add_argument("--worker-id", metavar="ID",
                        help="this worker's name in the schedule (default: HOST:PID)")  # fmt: skip
    _noise_options(parser, None)


def _fetch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from aggregator.sources.worker import FetchWorker, default_worker_id

    config = load_config(args.config)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # systemd and `kill` stop a worker with SIGTERM: it ends after its batch.
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

    def report(problem: Problem) -> None:
        if problem.severity == "error" or not args.quiet:
            print(problem, file=sys.stderr, flush=True)

    with FetchWorker.open(config, args.worker_id or default_worker_id(), report=report) as worker:
        result = worker.run(once=args.once, stop=stop)
    if not args.quiet:
        print(result.summary(), flush=True)
    return EXIT_REJECTED if result.errors else EXIT_OK


# --- check -------------------------------------------------------------------------------


def _check_options(parser: argparse.ArgumentParser) -> None:
    _config_option(parser)
    _noise_options(parser, "also list every record file and URL read")


def _check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    report = build(config, None, write=False)
    _problems(report, args)
    if args.verbose:
        from aggregator.sources.files import find_files

        for path, _ in find_files(config).files:
            print(f"read {path}")
        for source in config.sources:
            if source.url:
                print(f"fetched {source.url}")
    if not args.quiet:
        print(_check_summary(report))
    return _exit_code(report)


def _check_summary(report: BuildReport) -> str:
    return (
        f"{plural(report.records, 'record')} from {plural(report.documents, 'file')}: "
        f"{report.rejected} rejected, {report.unpublished} unpublished, "
        f"{report.filtered} filtered, {plural(report.duplicates, 'duplicate')}; "
        f"{plural(report.items, 'story', 'stories')} "
        f"(checked in {report.seconds:.2f} s, nothing written)"
    )


# --- topics ------------------------------------------------------------------------------


def _topics_options(parser: argparse.ArgumentParser) -> None:
    _config_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    _noise_options(parser, None)


def _topics(args: argparse.Namespace) -> int:
    from aggregator.curate import plan_site
    from aggregator.inventory import as_json, as_table, feed_rows

    config = load_config(args.config)
    site = plan_site(config)
    report = site.report()
    _problems(report, args)
    rows = feed_rows(config.site, site.plans)
    if args.json:
        print(as_json(rows))
    else:
        for line in as_table(rows):
            print(line)
        if not args.quiet:
            print(f"{plural(len(rows) - 1, 'topic')}; Atom and JSON Feed beside each RSS "
                  "feed (atom.xml, feed.json)")  # fmt: skip
    return _exit_code(report)


# --- explain -----------------------------------------------------------------------------


def _explain_options(parser: argparse.ArgumentParser) -> None:
    _config_option(parser)
    parser.add_argument("target", nargs="?", metavar="TARGET",
                        help="a record file or an article link")  # fmt: skip
    parser.add_argument("--topic", metavar="NAME",
                        help="the feed of this topic (name or slug); default: all")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="the same data as JSON")


def _explain(args: argparse.Namespace) -> int:
    from aggregator import explain  # the whole pipeline, without writing

    config = load_config(args.config)
    explainer = explain.Explainer(config)
    if args.target is not None and args.topic is not None:
        raise ConfigError(str(config.path), "--topic", "give a TARGET or --topic, not both")
    if args.target is None:
        report = explainer.feed(args.topic)
        print(explain.as_json(report) if args.json else explain.feed_text(report), end="")
        return EXIT_OK
    found = explainer.record(args.target)
    print(explain.as_json(found) if args.json else explain.record_text(found), end="")
    return EXIT_OK


# --- serve -------------------------------------------------------------------------------


def _serve_options(parser: argparse.ArgumentParser) -> None:
    _config_option(parser)
    _output_option(parser)
    parser.add_argument("--port", type=_port, default=8000, help="port (default: 8000)")
    parser.add_argument("--build-every", type=_seconds, metavar="SECONDS",
                        help="build now and then every SECONDS while serving")  # fmt: skip
    parser.add_argument("--live-reload", action="store_true",
                        help="reload the HTML pages open in a browser after a build "
                             "changed files (builds every 2 s unless --build-every is "
                             "given)")  # fmt: skip
    _noise_options(parser, "log every request, and every file a build writes")


LIVE_RELOAD_EVERY = 2.0  # seconds between builds under --live-reload without --build-every


def _build_for_serve(
    args: argparse.Namespace, seen: set[str] | None = None, *, quiet_unchanged: bool = False
) -> bool:
    """One build while serving: config re-read, so edits show up; errors never stop the
    server. A problem line an earlier round showed (in `seen`) is not repeated; with
    `quiet_unchanged` (the builds --live-reload makes on its own) a build that changed
    no file prints no summary. True if the build changed any file."""
    try:
        config = load_config(args.config)
        report = _locked_build(config, args.output, args)
    except ConfigError as exc:
        _config_errors(exc)
        sys.stderr.flush()
        return False
    except BuildLocked as exc:
        print(f"aggregator: {exc}; skipping this round", file=sys.stderr, flush=True)
        return False
    except (AggregatorError, OSError) as exc:
        print(f"aggregator: build failed: {exc}", file=sys.stderr, flush=True)
        return False
    changed = bool(report.written_paths)
    _report(report, args, seen, summary=changed or not quiet_unchanged)
    _announce(config, report.changed_paths, args)
    _deliver(config, args)
    sys.stdout.flush()
    return changed


def _serve(args: argparse.Namespace) -> int:
    from aggregator.serve import PreviewServer, Rebuilder  # only this command needs them

    config = load_config(args.config)
    output = args.output or config.site.output_dir
    every = args.build_every
    quiet = every is None and args.live_reload  # its own builds: report only changes
    if quiet:
        every = LIVE_RELOAD_EVERY
    seen: set[str] = set()
    if every is not None or not output.is_dir():
        _build_for_serve(args, seen)
    log = _warn(args) if args.verbose else None
    try:
        server = PreviewServer(output, args.port, log, live_reload=args.live_reload)
    except OSError as exc:
        print(f"aggregator: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    rebuilder = None
    if every is not None:

        def rebuild() -> None:
            if _build_for_serve(args, seen, quiet_unchanged=quiet):
                server.changed()

        rebuilder = Rebuilder(rebuild, every)
        rebuilder.start()
    reload = " with live reload" if args.live_reload else ""
    print(f"serving {output} at {server.url}{reload} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if rebuilder is not None:
            rebuilder.stop()
        server.shutdown_streams()
        server.server_close()
    return EXIT_OK


# --- the table of commands ---------------------------------------------------------------

COMMANDS: tuple[Command, ...] = (
    Command(
        name="init",
        summary="create a new site: config.toml, an example record, .gitignore",
        description="Create a new site in DIR (made if missing): a config.toml in which "
        "every table is explained, one example record in records/ and a .gitignore. "
        "It builds as it is. Nothing that exists is overwritten.",
        examples=("aggregator init mynews && cd mynews && aggregator build",),
        exit_codes=(EXIT_OK, EXIT_USAGE),
        options=_init_options,
        run=_init,
    ),
    Command(
        name="build",
        summary="build the feeds and pages",
        description="Read every source, merge and rank the stories and write each topic's "
        "RSS, Atom and JSON feeds and pages, the OPML list and the stylesheet. Files whose "
        "bytes did not change are not rewritten. With --dry-run, show what would change.",
        examples=(
            "aggregator build",
            "aggregator build --config site/config.toml --output /srv/www/feeds",
            "aggregator build --dry-run",
            "aggregator build -q --changed-paths changed.txt",
        ),
        exit_codes=(
            EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_LOCKED, EXIT_FAILED, EXIT_WRITE_FAILED,
            EXIT_INTERRUPTED,
        ),
        options=_build_options,
        run=_build,
    ),
    Command(
        name="fetch",
        summary="fetch worker: fetch due remote sources into the shared PostgreSQL state",
        description="Register the config's url sources in the PostgreSQL state ([state] "
        "url), then claim due ones under a lease, fetch them and store their records for "
        "'aggregator build', until stopped (SIGTERM ends it after the batch in hand). "
        "Run any number, on any number of machines. With --once: one pass, then exit.",
        examples=(
            "aggregator fetch --config site/config.toml",
            "aggregator fetch --once -q",
        ),
        exit_codes=(EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED),
        options=_fetch_options,
        run=_fetch,
    ),
    Command(
        name="check",
        summary="validate the config and every record; write nothing",
        description="Read and validate the config and every source (remote ones are "
        "fetched; with [state] url, read as the fetch workers stored them) and list every "
        "bad record or file, one line each. Nothing is written: neither feeds nor the "
        "state.",
        examples=("aggregator check", "aggregator check -q || echo 'records need fixing'"),
        exit_codes=(EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_INTERRUPTED),
        options=_check_options,
        run=_check,
    ),
    Command(
        name="topics",
        summary="list every topic: slug, stories, items shown, feed addresses",
        description="List every feed a build makes: the all-topics feed, then each topic "
        "with its slug, how many stories it has, how many of them its feeds hold, and its "
        "addresses. Writes nothing.",
        examples=("aggregator topics", "aggregator topics --json | jq -r '.topics[].rss'"),
        exit_codes=(EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_INTERRUPTED),
        options=_topics_options,
        run=_topics,
    ),
    Command(
        name="explain",
        summary="why a feed holds its items, or what became of a record",
        description="Without TARGET: every item of a feed with its rank, score and the "
        "parts of the score. With TARGET (a record file or an article link): what became "
        "of it. Writes nothing.",
        examples=(
            "aggregator explain --topic AI",
            "aggregator explain records/2026-11-02-lab-releases-compact-model.md --json",
        ),
        exit_codes=(EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED),
        options=_explain_options,
        run=_explain,
    ),
    Command(
        name="serve",
        summary="preview the output folder on 127.0.0.1",
        description="Serve the output folder on 127.0.0.1 until Ctrl-C, with the content "
        "types, ETags and compression of a production host. Builds first if the folder "
        "does not exist; --build-every rebuilds on an interval, --live-reload also "
        "reloads the pages open in a browser when a build changed them.",
        examples=("aggregator serve", "aggregator serve --port 8080 --live-reload"),
        exit_codes=(EXIT_OK, EXIT_USAGE),
        options=_serve_options,
        run=_serve,
    ),
)


class _Parser(argparse.ArgumentParser):
    """Remembers its subcommands' parsers, so an unknown option is reported with the
    usage of the command it was given to."""

    commands: dict[str, argparse.ArgumentParser]


def _parser(argv: Sequence[str] = ()) -> _Parser:
    """Every command, with the options of the one `argv` names (all of them when it
    names none): a cron build does not build the options of eleven other commands."""
    given = next((argument for argument in argv if not argument.startswith("-")), None)
    named = any(command.name == given for command in COMMANDS)
    parser = _Parser(
        prog="aggregator",
        description="Turn news records into ranked, per-topic RSS, Atom and JSON feeds "
        "with an HTML page for each topic.",
        epilog="Run 'aggregator COMMAND --help' for a command's options, exit codes and "
        "examples. New here? 'aggregator init mysite' makes a site that builds.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"aggregator {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = {}
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name,
            help=command.summary,
            description=command.description,
            epilog=command.epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if not named or command.name == given:
            command.options(sub)
        parser.commands[command.name] = sub
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _parser(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    command = next(command for command in COMMANDS if command.name == args.command)
    try:
        return command.run(args)
    except ConfigError as exc:
        _config_errors(exc)
        return EXIT_USAGE
    except BuildLocked as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except WorkerDied as exc:
        print(f"aggregator: build failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except StateUnavailable as exc:
        print(f"aggregator: {args.command} stopped: state store failed: {exc}; what was "
              "written is whole, rerun", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    except UploadFailed as exc:
        print(f"aggregator: upload failed: {exc}; build stopped: the output folder is "
              "complete, and the next build uploads what the bucket did not confirm",
              file=sys.stderr)  # fmt: skip
        return EXIT_WRITE_FAILED
    except WriteFailed as exc:
        print(f"aggregator: write failed: {exc}; build stopped: every file written is "
              "whole, and no page or OPML list links to a feed that was not written",
              file=sys.stderr)  # fmt: skip
        return EXIT_WRITE_FAILED
    except KeyboardInterrupt:
        print("aggregator: interrupted; every file written so far is whole, the rest was "
              "not written", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
