from guard.cli import build_parser


def test_every_subcommand_is_registered() -> None:
    parser = build_parser()
    for cmd in (["serve"], ["hash-key", "x"], ["scan", "x"], ["rules", "check"], ["report"]):
        args = parser.parse_known_args(cmd)[0]
        assert args.command == cmd[0]
