"""Command line: `aggregator build` and `aggregator check`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from aggregator import __version__
from aggregator.build import BuildReport, build
from aggregator.config import Config, load_config
from aggregator.errors import ConfigError
from aggregator.lock import BuildLocked, build_lock, lock_path

EXIT_OK = 0
EXIT_REJECTED = 1  # some input was rejected; everything else was still published
EXIT_USAGE = 2  # bad command line or configuration; nothing was written
EXIT_LOCKED = 3  # another build held the lock past [build] lock_timeout; nothing was done


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
    commands.add_parser("check", parents=[common], help="validate records; write nothing")
    return parser


def _report(report: BuildReport, args: argparse.Namespace) -> int:
    for problem in report.problems:
        if problem.severity == "error" or not args.quiet:
            print(problem, file=sys.stderr)
    if args.verbose:
        for path in report.written_paths:
            print(f"wrote {path}")
    if not args.quiet:
        print(report.summary() if args.command == "build" else _check_summary(report))
    return EXIT_REJECTED if report.rejected else EXIT_OK


def _check_summary(report: BuildReport) -> str:
    return (
        f"{report.records} records from {report.documents} files: {report.rejected} rejected, "
        f"{report.unpublished} unpublished, {report.duplicates} duplicates; "
        f"{report.items} stories (checked in {report.seconds:.2f} s, nothing written)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
        output = args.output
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
    return _report(report, args)


def _locked_build(config: Config, output: Path | None, args: argparse.Namespace) -> BuildReport:
    """Build while holding the lock, so overlapping cron runs never interleave."""
    path = lock_path(config.build.state_path)

    def waiting() -> None:
        if not args.quiet:
            print(f"aggregator: another build holds {path}; waiting up to "
                  f"{config.build.lock_timeout:g} s", file=sys.stderr)  # fmt: skip

    with build_lock(path, config.build.lock_timeout, waiting):
        return build(config, output, write=True)


if __name__ == "__main__":
    sys.exit(main())
