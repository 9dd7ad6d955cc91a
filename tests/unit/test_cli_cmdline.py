"""`pallet.cli.pallet.cmdline`, the CLI's command-line layer: click's parsing rules, messages
and exit statuses, on a toy command and on the `pallet` commands themselves."""

import os
import subprocess
import sys

import pytest

import pallet
from pallet.cli.pallet import cmdline
from pallet.cli.pallet.main import LAZY, cli, main
from pallet.testing import cli as tcli


@cmdline.group(context_settings={"help_option_names": ["-h", "--help"]})
@cmdline.option("--root", default="/r", show_default=True, envvar="TOY_ROOT", help="a root")
@cmdline.pass_context
def toy(ctx: cmdline.Context, root: str) -> None:
    """A toy group."""
    ctx.obj = {"root": root}


@toy.command("do")
@cmdline.option("-a", "--all", "all_", is_flag=True, help="everything")
@cmdline.option("-q", "--quiet", is_flag=True)
@cmdline.option("-o", "--out", default=None, help="where")
@cmdline.option("-e", "--env", multiple=True, help="repeatable")
@cmdline.option("--n", default=0, show_default=True, help="a count")
@cmdline.option("--mode", type=cmdline.Choice(["x", "y"]), default="x")
@cmdline.option("--file", type=cmdline.Path(exists=True, dir_okay=False), default=None)
@cmdline.option("--pause", type=cmdline.BOOL, default=True)
@cmdline.option("--ratio", type=float, default=None)
@cmdline.option("--color/--no-color", default=None, help="colours")
@cmdline.option("--need", required=True, envvar="TOY_NEED")
@cmdline.argument("first")
@cmdline.argument("rest", nargs=-1)
@cmdline.pass_context
def do(ctx: cmdline.Context, **kw):
    """Do a thing.

    At length, in a second paragraph."""
    ctx.obj["got"] = kw


@toy.command("run", context_settings={"allow_interspersed_args": False})
@cmdline.option("-t", "--tty", is_flag=True)
@cmdline.argument("image")
@cmdline.argument("command", nargs=-1, type=cmdline.UNPROCESSED)
@cmdline.pass_context
def run(ctx: cmdline.Context, tty: bool, image: str, command: tuple[str, ...]) -> None:
    """Run."""
    ctx.obj["got"] = {"tty": tty, "image": image, "command": command}


def parse(cmd: cmdline.Command, *args: str) -> dict:
    return cmd.make_context(cmd.name or "", list(args)).params


def invoke(*args: str) -> tuple[int, dict]:
    """The toy group end to end: (status, what the subcommand received)."""
    seen: dict = {}
    original = toy.callback

    def cb(ctx: cmdline.Context, root: str) -> None:
        original(ctx, root)
        seen["obj"] = ctx.obj  # the subcommand's too: contexts share it

    toy.callback = cmdline.pass_context(cb)
    try:
        code = toy.main(list(args), prog_name="toy")
    finally:
        toy.callback = original
    obj = seen.get("obj", {})
    return code, obj.get("got", {}) | {"root": obj.get("root")}


def fails(capsys, *args: str) -> str:
    """The toy group with a usage error: exit status 2; returns stderr."""
    with pytest.raises(cmdline.UsageError) as ei:
        toy.main(list(args), prog_name="toy")
    assert ei.value.exit_code == 2
    ei.value.show()
    return capsys.readouterr().err


DO = toy.commands["do"]


def test_flags_values_and_combined_short_options():
    p = parse(DO, "-aq", "-ofile", "--env=A=1", "-e", "B", "-eC", "--need", "x", "one")
    assert p["all_"] and p["quiet"] and p["out"] == "file"
    assert p["env"] == ("A=1", "B", "C")
    assert p["first"] == "one" and p["rest"] == ()
    p = parse(DO, "-qao", "f", "--need=", "one")
    assert p["quiet"] and p["all_"] and p["out"] == "f" and p["need"] == ""
    p = parse(DO, "--need", "x", "one")
    assert not p["all_"] and p["env"] == () and p["out"] is None and p["n"] == 0
    assert p["mode"] == "x" and p["pause"] is True and p["color"] is None


def test_an_option_value_is_the_next_word_whatever_it_looks_like():
    assert parse(DO, "--out", "--all", "--need", "x", "one")["out"] == "--all"
    assert parse(DO, "-o", "-", "--need", "x", "one")["out"] == "-"


def test_types_and_secondary_flags(tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    p = parse(DO, "--n", "7", "--ratio", "1.5", "--pause", "no", "--no-color", "--file",
              str(f), "--mode", "y", "--need", "x", "one")
    assert p["n"] == 7 and p["ratio"] == 1.5 and p["pause"] is False
    assert p["color"] is False and p["file"] == str(f) and p["mode"] == "y"
    assert parse(DO, "--color", "--pause=1", "--need", "x", "a")["color"] is True


def test_options_after_arguments_and_nargs(capsys):
    p = parse(DO, "one", "two", "-a", "three", "--need", "x")
    assert p["first"] == "one" and p["rest"] == ("two", "three") and p["all_"]
    # `--` ends the options: what follows is positional, dashes and all
    p = parse(DO, "--need", "x", "--", "-a", "--b")
    assert p["first"] == "-a" and p["rest"] == ("--b",) and not p["all_"]
    assert parse(DO, "--need", "x", "-")["first"] == "-"


def test_no_interspersed_options_after_the_first_argument():
    run_ = toy.commands["run"]
    assert parse(run_, "-t", "img", "ls", "-l", "-t") == {
        "tty": True, "image": "img", "command": ("ls", "-l", "-t")}
    assert parse(run_, "img", "--", "x")["command"] == ("--", "x")
    assert parse(run_, "--", "img", "-t")["command"] == ("-t",)


def test_group_context_obj_and_envvar(monkeypatch):
    code, got = invoke("do", "--need", "x", "a")
    assert code == 0 and got["root"] == "/r" and got["first"] == "a"
    monkeypatch.setenv("TOY_ROOT", "/env")
    monkeypatch.setenv("TOY_NEED", "from-env")
    code, got = invoke("do", "a")
    assert got["root"] == "/env" and got["need"] == "from-env"
    assert invoke("--root", "/flag", "do", "a")[1]["root"] == "/flag"
    monkeypatch.setenv("TOY_ROOT", "")  # empty: unset, as click
    assert invoke("do", "a")[1]["root"] == "/r"


@pytest.mark.parametrize(("args", "message"), [
    (["do", "--nope"],
     "Error: No such option '--nope'. (Did you mean one of: '--mode', '--n', '--need'?)"),
    (["do", "--ratoi"], "Error: No such option '--ratoi'. Did you mean '--ratio'?"),
    (["do", "--zzz"], "Error: No such option '--zzz'."),
    (["do", "-x"], "Error: No such option '-x'."),
    (["do", "--need", "x"], "Error: Missing argument 'FIRST'."),
    (["do", "a"], "Error: Missing option '--need'."),
    (["do", "--need", "x", "--mode", "z", "a"],
     "Error: Invalid value for '--mode': 'z' is not one of 'x', 'y'."),
    (["do", "--need", "x", "--n", "1.5", "a"],
     "Error: Invalid value for '--n': '1.5' is not a valid integer."),
    (["do", "--need", "x", "--ratio", "r", "a"],
     "Error: Invalid value for '--ratio': 'r' is not a valid float."),
    (["do", "--need", "x", "--pause", "maybe", "a"],
     "Error: Invalid value for '--pause': 'maybe' is not a valid boolean. Recognized values: "
     ", 0, 1, f, false, n, no, off, on, t, true, y, yes"),
    (["do", "--need", "x", "--file", "/nonexistent", "a"],
     "Error: Invalid value for '--file': File '/nonexistent' does not exist."),
    (["do", "--need", "x", "--file", "/", "a"],
     "Error: Invalid value for '--file': File '/' is a directory."),
    (["run", "img", "--", "x"], None),
    (["nosuch"], "Error: No such command 'nosuch'."),
    (["runn"], "Error: No such command 'runn'. Did you mean 'run'?"),
    (["--root", "/x"], "Error: Missing command."),
])
def test_usage_errors(capsys, args, message):
    if message is None:
        assert invoke(*args)[0] == 0
        return
    err = fails(capsys, *args)
    assert err.endswith(message + "\n"), err
    usage = "Usage: toy [OPTIONS] COMMAND [ARGS]...\nTry 'toy --help' for help.\n\n" \
        if args[0] != "do" else \
        "Usage: toy do [OPTIONS] FIRST [REST]...\nTry 'toy do --help' for help.\n\n"
    assert err.startswith(usage), err


def test_option_usage_errors_have_no_usage_line(capsys):
    assert fails(capsys, "do", "-a=1").endswith("\n\nError: No such option '-='.\n")
    assert fails(capsys, "do", "--all=1") == "Error: Option '--all' does not take a value.\n"
    assert fails(capsys, "do", "--out") == "Error: Option '--out' requires an argument.\n"
    assert fails(capsys, "do", "-o") == "Error: Option '-o' requires an argument.\n"


def test_extra_arguments(capsys):
    assert fails(capsys, "run") == "Usage: toy run [OPTIONS] IMAGE [COMMAND]...\n" \
        "Try 'toy run --help' for help.\n\nError: Missing argument 'IMAGE'.\n"
    r = tcli.run(["ps", "a"])
    assert r.exit_code == 2 and r.stderr.endswith("Error: Got unexpected extra argument (a)\n")
    r = tcli.run(["ps", "a", "b"])
    assert r.stderr.endswith("Error: Got unexpected extra arguments (a b)\n")


def test_help(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert toy.main(["do", "--help"], prog_name="toy") == 0
    assert capsys.readouterr().out == """\
Usage: toy do [OPTIONS] FIRST [REST]...

  Do a thing.

  At length, in a second paragraph.

Options:
  -a, --all             everything
  -q, --quiet
  -o, --out TEXT        where
  -e, --env TEXT        repeatable
  --n INTEGER           a count  [default: 0]
  --mode [x|y]
  --file FILE
  --pause BOOLEAN
  --ratio FLOAT
  --color / --no-color  colours
  --need TEXT           [required]
  -h, --help            Show this message and exit.
"""
    # help wins over missing arguments, and -h is inherited from the group
    assert toy.main(["do", "-h"], prog_name="toy") == 0
    assert capsys.readouterr().out.startswith("Usage: toy do [OPTIONS]")
    assert toy.main(["-h"], prog_name="toy") == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: toy [OPTIONS] COMMAND [ARGS]...\n\n  A toy group.\n")
    assert "  --root TEXT  a root  [default: /r]\n" in out
    assert "Commands:\n  do   Do a thing.\n  run  Run.\n" in out
    # a group without its subcommand: its help on stderr, status 2
    with pytest.raises(cmdline.UsageError) as ei:
        toy.main([], prog_name="toy")
    ei.value.show()
    assert ei.value.exit_code == 2
    assert capsys.readouterr().err.startswith("Usage: toy [OPTIONS] COMMAND [ARGS]...")


def test_long_help_wraps_beside_the_names(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = tcli.run(["run", "--help"]).output
    assert "  --restart TEXT                 no, on-failure[:max-retries], always, unless-\n" \
        "                                 stopped\n" in out
    assert "  --pull [missing|always|never]  pull the image  [default: missing]\n" in out


def test_confirm_and_prompt(monkeypatch, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("what\ny\n"))
    assert cmdline.confirm("Sure?") is True
    captured = capsys.readouterr()
    assert captured.out == "Sure? [y/N]: Sure? [y/N]: " and "invalid input" in captured.err
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert cmdline.confirm("Sure?") is False
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    with pytest.raises(cmdline.Abort):
        cmdline.confirm("Sure?", abort=True)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(cmdline.Abort):
        cmdline.confirm("Sure?")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\nme\n"))
    assert cmdline.prompt("Username") == "me"


# --- the pallet commands ----------------------------------------------------------------------


def test_pallet_run_passes_what_follows_the_image_to_the_container():
    run_ = cli.commands["run"]
    p = parse(run_, "--rm", "-it", "-e", "A=1", "busybox", "ls", "-l", "--rm")
    assert p["command"] == ("ls", "-l", "--rm") and p["image"] == "busybox"
    assert p["auto_remove"] and p["interactive"] and p["tty"] and p["env"] == ("A=1",)
    p = parse(run_, "-h", "host", "-dP", "-p8080:80", "--name=n", "img")
    assert p["hostname"] == "host" and p["detach"] and p["publish_all"]
    assert p["publish"] == ("8080:80",) and p["name"] == "n" and p["command"] == ()
    p = parse(cli.commands["exec"], "-it", "c", "sh", "-c", "echo -n")
    assert p["command"] == ("sh", "-c", "echo -n") and p["tty"]
    p = parse(cli.commands["stop"], "a", "-t", "5", "b")
    assert p["containers"] == ("a", "b") and p["timeout"] == 5
    assert parse(cli.commands["top"], "c", "-ef")["ps_args"] == ("-ef",)
    assert parse(cli.get_command(None, "commit"), "-p", "false", "c")["pause"] is False


def test_pallet_usage_errors():
    r = tcli.run(["run"])
    assert r.exit_code == 2 and r.stderr == (
        "Usage: pallet run [OPTIONS] IMAGE [COMMAND]...\nTry 'pallet run --help' for help.\n"
        "\nError: Missing argument 'IMAGE'.\n")
    r = tcli.run(["ps", "--nope"])
    assert r.exit_code == 2 and r.stderr.endswith("Error: No such option '--nope'.\n")
    r = tcli.run(["run", "--pull", "x", "busybox"])
    assert r.exit_code == 2 and r.stderr.endswith(
        "Error: Invalid value for '--pull': 'x' is not one of 'missing', 'always', "
        "'never'.\n")
    r = tcli.run(["run", "--env-file", "/nonexistent", "busybox"])
    assert r.exit_code == 2 and "File '/nonexistent' does not exist." in r.stderr
    r = tcli.run(["update", "c"])  # raised by the command: its usage line still comes first
    assert r.exit_code == 2 and r.stderr.startswith("Usage: pallet update [OPTIONS]")
    assert r.stderr.endswith("Error: you must provide one or more flags when using this "
                             "command\n")
    r = tcli.run(["--root"])
    assert r.exit_code == 2 and r.stderr == "Error: Option '--root' requires an argument.\n"
    r = tcli.run([])
    assert r.exit_code == 2 and "Commands:" in r.stderr and r.output == ""


def test_pallet_host_option_and_envvar(monkeypatch):
    root = cli.make_context("pallet", ["-H", "unix:///x.sock", "ps"])
    assert root.meta["pallet.host"] == "unix:///x.sock"
    monkeypatch.setenv("PALLET_HOST", "unix:///env.sock")
    monkeypatch.setenv("PALLET_ROOT", "/env-root")
    root = cli.make_context("pallet", ["ps"])
    assert root.meta["pallet.host"] == "unix:///env.sock"
    assert root.params["root"] == "/env-root"


def test_pallet_errors_exit_statuses(monkeypatch):
    monkeypatch.setenv("PALLET_HOST", "unix:///nonexistent/pallet.sock")
    monkeypatch.setenv("PALLET_NO_AUTOSTART", "1")
    r = tcli.run(["ps"])
    assert r.exit_code == 1
    assert r.stderr.startswith("pallet: Cannot connect to palletd")
    r = tcli.run(["system", "prune"])  # stdin at its end: no answer, aborted
    assert r.exit_code == 130 and r.output.endswith("Are you sure you want to continue? "
                                                    "[y/N]: ")
    with pytest.raises(SystemExit) as ei:
        main(["system", "prune", "--nope"])
    assert ei.value.code == 2


def test_pallet_help_lists_the_lazy_commands_without_importing_them():
    code = ("import sys\nfrom pallet.cli.pallet.main import main\nmain(['--help'])\n"
            "lazy = [m for m in sys.modules if m.rsplit('.', 1)[-1] in "
            "('image', 'registry', 'transfer', 'login', 'network', 'volume', 'archive', "
            "'build')]\nprint('imported:', lazy)\n")
    out = _fresh(code)
    assert out.endswith("imported: []\n"), out
    for name in LAZY:
        assert f"\n  {name} " in out
    assert "  push      Push a local image (to DEST, default: its own name).\n" in out
    assert "  cp        Copy files/folders between a container and the local...\n" in out
    assert "  run       Create and run a new container from an image.\n" in out


@pytest.mark.parametrize("name", sorted(LAZY))
def test_lazy_summaries_are_the_commands_docstrings(name):
    cmd = cli.get_command(None, name)  # imports it
    assert cmdline._short_help(cmd.help, 1000) == cmdline._short_help(LAZY[name][1], 1000)


def test_importing_the_cli_imports_no_heavy_module():
    out = _fresh("import sys\nbefore = set(sys.modules)\nimport pallet.cli.pallet.main\n"
                 "print(sorted(set(sys.modules) - before))\n")
    loaded = eval(out)
    for heavy in ("click", "typing", "inspect", "enum", "re", "json", "socket", "subprocess",
                  "urllib.parse", "threading", "dataclasses", "signal", "contextlib"):
        assert heavy not in loaded, loaded
    assert all(m == "__future__" or m.startswith("pallet") for m in loaded), loaded


def _fresh(code: str) -> str:
    """Run `code` in a new interpreter that imports this pallet."""
    src = os.path.dirname(os.path.dirname(pallet.__file__))
    env = {**os.environ, "PYTHONPATH": src, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout
