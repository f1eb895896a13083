"""Command line: `aggregator build`, `check`, `explain` and `serve`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from aggregator import __version__
from aggregator.build import BuildReport, build, unusable_state
from aggregator.config import Config, load_config
from aggregator.errors import AggregatorError, ConfigError, WriteFailed
from aggregator.lock import BuildLocked, build_lock, lock_path
from aggregator.parallel import WorkerDied

EXIT_OK = 0
EXIT_REJECTED = 1  # some input was rejected; everything else was still published
EXIT_USAGE = 2  # bad command line or configuration; nothing was written
EXIT_LOCKED = 3  # another build held the lock past [build] lock_timeout; nothing was done
EXIT_FAILED = 4  # the build stopped part-way (a worker process died); rerun it
EXIT_WRITE_FAILED = 5  # an output file could not be written (disk full, I/O error)
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Turn news records into ranked, per-topic RSS and Atom feeds.",
    )
    parser.add_argument("--version", action="version", version=f"aggregator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=Path("config.toml"),
                        help="configuration file (default: ./config.toml)")  # fmt: skip
    noise = common.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="store_true", help="list every file written")
    noise.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    build_cmd = commands.add_parser("build", parents=[common], help="build the feeds")
    build_cmd.add_argument("--output", type=Path, help="output folder (default: [site] output_dir)")
    build_cmd.add_argument(
        "--full", action="store_true", help="ignore the caches: read and render everything"
    )
    build_cmd.add_argument(
        "--accept-shrink",
        action="store_true",
        help="publish sources that shrank past [build] max_shrink since the last build",
    )
    commands.add_parser("check", parents=[common], help="validate records; write nothing")
    explain_cmd = commands.add_parser(
        "explain",
        parents=[common],
        help="why a feed holds its items, or what became of a record",
        description="Without TARGET: every item of a feed with its rank, score and the parts "
        "of the score. With TARGET (a record file or an article link): what became of it.",
    )
    explain_cmd.add_argument("target", nargs="?", metavar="TARGET",
                             help="a record file or an article link")  # fmt: skip
    explain_cmd.add_argument(
        "--topic", metavar="NAME", help="the feed of this topic (name or slug); default: all"
    )
    explain_cmd.add_argument("--json", action="store_true", help="the same data as JSON")
    serve_cmd = commands.add_parser(
        "serve", parents=[common], help="preview the output folder on 127.0.0.1"
    )
    serve_cmd.add_argument("--port", type=_port, default=8000, help="port (default: 8000)")
    serve_cmd.add_argument("--build-every", type=_seconds, metavar="SECONDS",
                           help="build now and then every SECONDS while serving")  # fmt: skip
    serve_cmd.add_argument("--output", type=Path, help="output folder (default: [site] output_dir)")
    return parser


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


def _report(report: BuildReport, args: argparse.Namespace, seen: set[str] | None = None) -> int:
    """Print the problems and the summary; the exit code. `seen`: lines already shown
    by an earlier round of `serve --build-every`, which are not repeated."""
    for problem in report.problems:
        line = str(problem)
        if seen is not None:
            if line in seen:
                continue
            seen.add(line)
        if problem.severity == "error" or not args.quiet:
            print(line, file=sys.stderr)
    if args.verbose:
        for path in report.written_paths:
            print(f"wrote {path}")
    if not args.quiet:
        print(_check_summary(report) if args.command == "check" else report.summary())
    return EXIT_REJECTED if report.rejected else EXIT_OK


def _check_summary(report: BuildReport) -> str:
    return (
        f"{report.records} records from {report.documents} files: {report.rejected} rejected, "
        f"{report.unpublished} unpublished, {report.duplicates} duplicates; "
        f"{report.items} stories (checked in {report.seconds:.2f} s, nothing written)"
    )


def _warn(args: argparse.Namespace) -> Callable[[str], None]:
    def warn(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    return warn


def _announce(config: Config, report: BuildReport, args: argparse.Namespace) -> None:
    """WebSub: tell the hub which feeds changed. Never changes the exit code."""
    if not config.site.websub_hub:
        return
    from aggregator.websub import announce_build  # the HTTP stack, only when needed

    output = args.output or config.site.output_dir
    result = announce_build(config, output, report.written_paths, _warn(args))
    if result is not None and result.announced and args.verbose:
        print(f"announced {len(result.announced)} feed URL(s) to {config.site.websub_hub}")


def _deliver(config: Config, args: argparse.Namespace) -> None:
    """Webhooks: POST each changed feed's new items. Never changes the exit code."""
    if not config.webhooks:
        return
    from aggregator.webhooks import deliver_build  # the HTTP stack, only when needed

    result = deliver_build(config, _warn(args))
    if result is not None and result.delivered and args.verbose:
        print(f"delivered {result.delivered} webhook POST(s)")


def _build_for_serve(args: argparse.Namespace, seen: set[str] | None = None) -> None:
    """One build while serving: config re-read, so edits show up; errors never stop the
    server. A problem line shown by an earlier round (in `seen`) is not repeated."""
    try:
        config = load_config(args.config)
        report = _locked_build(config, args.output, args)
    except ConfigError as exc:
        print(f"aggregator: config error: {exc}", file=sys.stderr, flush=True)
        return
    except BuildLocked as exc:
        print(f"aggregator: {exc}; skipping this round", file=sys.stderr, flush=True)
        return
    except (AggregatorError, OSError) as exc:
        print(f"aggregator: build failed: {exc}", file=sys.stderr, flush=True)
        return
    _report(report, args, seen)
    _announce(config, report, args)
    _deliver(config, args)
    sys.stdout.flush()


def _serve(config: Config, args: argparse.Namespace) -> int:
    from aggregator.serve import PreviewServer, Rebuilder  # only this command needs them

    output = args.output or config.site.output_dir
    seen: set[str] = set()
    if args.build_every is not None or not output.is_dir():
        _build_for_serve(args, seen)
    log = _warn(args) if args.verbose else None
    try:
        server = PreviewServer(output, args.port, log)
    except OSError as exc:
        print(f"aggregator: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    rebuilder = None
    if args.build_every is not None:
        rebuilder = Rebuilder(lambda: _build_for_serve(args, seen), args.build_every)
        rebuilder.start()
    print(f"serving {output} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if rebuilder is not None:
            rebuilder.stop()
        server.server_close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
        if args.command == "serve":
            return _serve(config, args)
        if args.command == "explain":
            return _explain(config, args)
        output = getattr(args, "output", None)  # `check` has no --output
        if args.command == "build":
            report = _locked_build(config, output, args)
        else:
            report = build(config, output, write=False)
    except ConfigError as exc:
        print(f"aggregator: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BuildLocked as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except WorkerDied as exc:
        print(f"aggregator: build failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except WriteFailed as exc:
        print(f"aggregator: write failed: {exc}; build stopped: every file written is "
              "whole, and no page or OPML list links to a feed that was not written",
              file=sys.stderr)  # fmt: skip
        return EXIT_WRITE_FAILED
    except KeyboardInterrupt:
        print("aggregator: interrupted; every file written so far is whole, the rest was "
              "not written", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    code = _report(report, args)
    if args.command == "build":
        _announce(config, report, args)
        _deliver(config, args)
    return code


def _explain(config: Config, args: argparse.Namespace) -> int:
    from aggregator import explain  # the whole pipeline, without writing

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


def _locked_build(config: Config, output: Path | None, args: argparse.Namespace) -> BuildReport:
    """Build while holding the lock, so overlapping cron runs never interleave."""
    path = lock_path(config.build.state_path)

    def waiting() -> None:
        if not args.quiet:
            print(f"aggregator: another build holds {path}; waiting up to "
                  f"{config.build.lock_timeout:g} s", file=sys.stderr)  # fmt: skip

    with ExitStack() as stack:
        try:
            stack.enter_context(build_lock(path, config.build.lock_timeout, waiting))
        except OSError as exc:
            raise unusable_state(config, exc) from None
        return build(config, output, write=True, full=getattr(args, "full", False),
                     accept_shrink=getattr(args, "accept_shrink", False))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
