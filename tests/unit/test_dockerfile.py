"""The Dockerfile parser, variable substitution and .dockerignore matching (no root)."""

from __future__ import annotations

import pytest

from pallet.build import dockerfile as df
from pallet.build.dockerignore import Matcher
from pallet.build.dockerignore import parse as parse_ignore
from pallet.build.shell import expand, split_words
from pallet.errors import InvalidArgument


def one(text: str) -> df.Instruction:
    d = df.parse("FROM busybox\n" + text)
    (ins,) = d.stages[0].commands
    return ins


# --- logical lines ------------------------------------------------------------------------

def test_continuation_joins_lines_as_written():
    ins = one("RUN echo a \\\n    b \\\n  c\n")
    assert ins.args == ["echo a     b   c"]
    assert ins.line == 2
    assert ins.original == "RUN echo a     b   c"


def test_comments_and_blank_lines_inside_a_continuation_are_dropped():
    ins = one("RUN echo a \\\n# a comment\n\n    b\n")
    assert ins.args == ["echo a     b"]


def test_comment_lines_and_indented_instructions():
    d = df.parse("# a comment\n   # another\nFROM busybox\n\n   run echo hi\n")
    (ins,) = d.stages[0].commands
    assert (ins.cmd, ins.line, ins.args) == ("RUN", 5, ["echo hi"])


def test_bom_and_crlf():
    d = df.parse("\ufeff# escape=`\r\nFROM busybox\r\nRUN a `\r\n  b\r\n")
    assert d.escape == "`"
    assert d.stages[0].commands[0].args == ["a   b"]


def test_hash_inside_a_line_is_not_a_comment():
    assert one("RUN echo a # b\n").args == ["echo a # b"]


def test_escape_directive_backtick():
    d = df.parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY a\\b c\\\n")
    run, copy = d.stages[0].commands
    assert d.escape == "`"
    assert run.args == ["echo a   b"]
    assert copy.args == ["a\\b", "c\\"]


def test_directive_after_a_comment_is_a_comment():
    d = df.parse("# hello\n# escape=`\nFROM busybox\nRUN a \\\n b\n")
    assert d.escape == "\\"
    assert d.stages[0].commands[0].args == ["a  b"]


def test_unknown_directive_ends_directives_and_syntax_is_accepted():
    assert df.parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n").escape == "`"
    assert df.parse("# foo=bar\n# escape=`\nFROM x\n").escape == "\\"


def test_duplicate_and_invalid_directives():
    with pytest.raises(df.ParseError, match="line 2: only one escape"):
        df.parse("# escape=`\n# escape=\\\nFROM x\n")
    with pytest.raises(df.ParseError, match="line 1: invalid escape token 'x'"):
        df.parse("# escape=x\nFROM x\n")


# --- instructions and their forms ---------------------------------------------------------

def test_run_cmd_entrypoint_json_and_shell_forms():
    d = df.parse('FROM x\nRUN ["echo", "a b"]\nCMD echo $HOME\nENTRYPOINT ["/bin/sh"]\n'
                 'RUN [not json\n')
    run, cmd, ep, bad = d.stages[0].commands
    assert (run.json, run.args) == (True, ["echo", "a b"])
    assert (cmd.json, cmd.args) == (False, ["echo $HOME"])
    assert (ep.json, ep.args) == (True, ["/bin/sh"])
    assert (bad.json, bad.args) == (False, ["[not json"])


def test_copy_add_volume_forms_and_flags():
    c = one('COPY --from=build --chown=1:2 ["a b", "/c/"]\n')
    assert c.flags == {"from": "build", "chown": "1:2"}
    assert (c.json, c.args) == (True, ["a b", "/c/"])
    a = one("ADD  x.tar   /opt/\n")
    assert (a.json, a.args) == (False, ["x.tar", "/opt/"])
    v = one("VOLUME /a /b\n")
    assert v.args == ["/a", "/b"]


def test_env_label_forms():
    e = one('ENV A=1 B="two words" C=three\\ words D=\n')
    assert e.pairs == [("A", "1"), ("B", '"two words"'), ("C", "three\\ words"), ("D", "")]
    old = one("ENV NAME some value here\n")
    assert old.pairs == [("NAME", "some value here")]
    lbl = one('LABEL "com.example.x"="a b" version=1\n')
    assert lbl.pairs == [('"com.example.x"', '"a b"'), ("version", "1")]


def test_arg_forms_and_meta_args():
    d = df.parse("ARG BASE=busybox\nARG V\nFROM ${BASE}:latest AS Builder\nARG A B=2\n")
    assert [x.pairs for x in d.meta_args] == [[("BASE", "busybox")], [("V", None)]]
    (s,) = d.stages
    assert (s.base, s.name) == ("${BASE}:latest", "builder")
    assert s.commands[0].pairs == [("A", None), ("B", "2")]


def test_stages_by_name_and_index():
    d = df.parse("FROM a AS one\nRUN x\nFROM b\nFROM scratch AS last\n")
    assert [s.index for s in d.stages] == [0, 1, 2]
    assert d.stage("ONE").base == "a"
    assert d.stage("1").base == "b"
    assert d.stage("last").name == "last"
    assert d.stage("nope") is None


def test_from_platform_flag():
    d = df.parse("FROM --platform=linux/amd64 busybox\n")
    assert d.stages[0].platform == "linux/amd64"


def test_healthcheck():
    h = one('HEALTHCHECK --interval=5s --timeout=1m30s --retries=3 CMD ["curl", "x"]\n')
    assert h.health == {"Test": ["CMD", "curl", "x"], "Interval": 5_000_000_000,
                        "Timeout": 90_000_000_000, "Retries": 3}
    assert one("HEALTHCHECK CMD curl -f http://x || exit 1\n").health == {
        "Test": ["CMD-SHELL", "curl -f http://x || exit 1"]}
    assert one("HEALTHCHECK NONE\n").health == {"Test": ["NONE"]}


def test_onbuild_and_shell_and_misc():
    o = one("ONBUILD COPY . /app\n")
    assert o.expression == "COPY . /app"
    assert o.trigger is not None and o.trigger.cmd == "COPY"
    s = one('SHELL ["/bin/bash", "-c"]\n')
    assert s.args == ["/bin/bash", "-c"]
    assert one("WORKDIR /a b\n").args == ["/a b"]
    assert one("USER nobody:nogroup\n").args == ["nobody:nogroup"]
    assert one("STOPSIGNAL SIGKILL\n").args == ["SIGKILL"]
    assert one("EXPOSE 80 443/tcp\n").args == ["80", "443/tcp"]


def test_parse_duration():
    assert df.parse_duration("1h2m3s") == 3_723_000_000_000
    assert df.parse_duration("500ms") == 500_000_000
    assert df.parse_duration("1.5s") == 1_500_000_000
    with pytest.raises(ValueError):
        df.parse_duration("5")


# --- errors name the line and the problem -------------------------------------------------

@pytest.mark.parametrize(("text", "line", "message"), [
    ("FROM x\nRUNN echo\n", 2, "unknown instruction: RUNN"),
    ("FROM x\nRUN\n", 2, "RUN requires at least one argument"),
    ("FROM x\nCOPY onlyone\n", 2, "COPY requires at least two arguments"),
    ("FROM\n", 1, "FROM requires either one or three arguments"),
    ("FROM a b\n", 1, "FROM requires either one or three arguments"),
    ("FROM a AS 1st\n", 1, "invalid name for build stage"),
    ("FROM a AS x\nFROM b AS x\n", 2, "duplicate name 'x'"),
    ("FROM x\nENV\n", 2, "ENV requires at least one argument"),
    ("FROM x\nENV A=1 B\n", 2, "can't find = in 'B'"),
    ("FROM x\nENV A\n", 2, "ENV must have two arguments"),
    ("FROM x\nLABEL =x\n", 2, "LABEL names can not be blank"),
    ("FROM x\nSHELL /bin/sh -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM x\nHEALTHCHECK FOO x\n", 2, "Unknown type 'FOO' in HEALTHCHECK"),
    ("FROM x\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK NONE takes no arguments"),
    ("FROM x\nHEALTHCHECK --retries=-1 CMD x\n", 2, "--retries cannot be negative"),
    ("FROM x\nHEALTHCHECK --interval=5 CMD x\n", 2, "invalid duration"),
    ("FROM x\nCOPY --foo=1 a b\n", 2, "Unknown flag: foo"),
    ("FROM x\nCOPY --chmod=755 a b\n", 2, "the --chmod option requires BuildKit"),
    ("FROM x\nRUN --mount=type=cache,target=/x make\n", 2, "requires BuildKit"),
    ("FROM x\nCOPY --from a b\n", 2, "Missing a value on flag: from"),
    ("FROM x\nONBUILD ONBUILD RUN x\n", 2, "ONBUILD isn't allowed as an ONBUILD trigger"),
    ("FROM x\nONBUILD FROM y\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM x\nVOLUME [\"\"]\n", 2, "VOLUME specified can not be an empty string"),
    ("FROM x\nSTOPSIGNAL a b\n", 2, "STOPSIGNAL requires exactly one argument"),
    ("FROM x\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
    ("RUN echo\n", 1, "no build stage in current context"),
    ("# c\n\nENV A=1\nFROM x\n", 3, "no build stage in current context"),
])
def test_errors(text, line, message):
    with pytest.raises(df.ParseError) as exc:
        df.parse(text)
    assert exc.value.line == line
    assert f"Dockerfile parse error line {line}: " in str(exc.value)
    assert message in str(exc.value)


def test_empty_dockerfile():
    with pytest.raises(InvalidArgument, match="cannot be empty"):
        df.parse("# only a comment\n\n")


# --- substitution -------------------------------------------------------------------------

ENV = {"A": "1", "EMPTY": "", "SP": "a b", "HOME": "/root"}


@pytest.mark.parametrize(("word", "want"), [
    ("$A", "1"),
    ("${A}", "1"),
    ("x${A}y", "x1y"),
    ("$A$A", "11"),
    ("$UNSET", ""),
    ("${UNSET}", ""),
    ("${UNSET:-def}", "def"),
    ("${EMPTY:-def}", "def"),
    ("${EMPTY-def}", ""),
    ("${UNSET-def}", "def"),
    ("${A:-def}", "1"),
    ("${A:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"),
    ("${UNSET:+alt}", ""),
    ("${UNSET:-$A}", "1"),
    ("${UNSET:-${A:+nested}}", "nested"),
    ("${UNSET:-'quoted $A'}", "quoted $A"),
    ("\\$A", "$A"),
    ("'$A'", "$A"),
    ('"$A"', "1"),
    ('"$SP"', "a b"),
    ('"a\\"b"', 'a"b'),
    ('"a\\$A"', "a$A"),
    ('"a\\nb"', "a\\nb"),
    ("a\\ b", "a b"),
    ("it's\\'", "its\\"),
    ("$$x", "x"),
    ("$", "$"),
    ("a$", "a$"),
    ("$1x", "x"),
    ("${HOME}/bin:$A", "/root/bin:1"),
    ("$A-x", "1-x"),
    ("$A.x", "1.x"),
])
def test_expand(word, want):
    assert expand(word, ENV) == want


def test_expand_with_backtick_escape():
    assert expand("`$A", ENV, "`") == "$A"
    assert expand("a\\b", ENV, "`") == "a\\b"


@pytest.mark.parametrize(("word", "message"), [
    ("${A", "missing '}'"),
    ("${A:-x", "unexpected end of statement while looking for matching }"),
    ("${}", "bad substitution"),
    ("${:-x}", "bad substitution"),
    ("${A:=x}", "unsupported modifier (=) in substitution"),
    ("${A!x}", "missing ':' in substitution"),
    ("${UNSET:?is required}", "UNSET: is required"),
    ("${UNSET?}", "UNSET: is not allowed to be unset"),
    ("'abc", "matching single-quote"),
    ('"abc', "matching double-quote"),
])
def test_expand_errors(word, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("$", r"\$").replace("{", r"\{").replace("}", r"\}")):
        expand(word, ENV)


def test_split_words_keeps_quotes_for_expand():
    assert split_words('a="b c" d=\'e f\' g=h\\ i') == ['a="b c"', "d='e f'", "g=h\\ i"]
    assert split_words('x ""  y') == ["x", '""', "y"]
    assert [expand(w, {}) for w in split_words('a="b c"')] == ["a=b c"]


# --- .dockerignore ------------------------------------------------------------------------

def test_dockerignore_patterns():
    m = Matcher(parse_ignore("# comment\n*.log\n/build\n!build/keep.txt\n**/tmp\ndocs/*.md\n"
                             "!docs/README.md\n./secret//\n"))
    assert m.excluded("a.log")
    assert not m.excluded("dir/a.log")  # `*` does not cross directories
    assert m.excluded("build") and m.excluded("build/out/x")
    assert not m.excluded("build/keep.txt")
    assert m.excluded("tmp") and m.excluded("a/b/tmp/c")
    assert m.excluded("docs/x.md") and not m.excluded("docs/README.md")
    assert m.excluded("secret/key")
    assert not m.excluded("src/main.py")
    assert m.may_include_below("build")


def test_dockerignore_char_classes_and_question_mark():
    m = Matcher(parse_ignore("file?.txt\n[ab]*.c\n[!x]y\n"))
    assert m.excluded("file1.txt") and not m.excluded("file10.txt")
    assert m.excluded("a.c") and m.excluded("bcd.c") and not m.excluded("c.c")
    assert m.excluded("zy") and not m.excluded("xy")


# --- properties ---------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PLAIN = st.text(st.characters(blacklist_characters="$'\"\\`", blacklist_categories=("Cs",)))
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@given(PLAIN)
def test_words_without_specials_expand_to_themselves(word):
    assert expand(word, ENV) == word


@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_escaping_every_character_gives_it_back(word):
    assert expand("".join("\\" + c for c in word), ENV) == word


@given(PLAIN, NAMES, PLAIN)
def test_single_quotes_are_literal_and_braces_substitute(prefix, name, value):
    env = {name: value}
    assert expand(f"'{prefix}${name}'", env) == f"{prefix}${name}"
    assert expand(f"{prefix}${{{name}}}", env) == prefix + value
    assert expand(f'"${{{name}:-x}}"', env) == (value or "x")


@given(st.lists(st.tuples(NAMES, PLAIN.filter(lambda v: v.strip() == v and " " not in v
                                              and "\t" not in v and v.isprintable())),
                min_size=1, max_size=5))
def test_env_pairs_round_trip(pairs):
    text = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
    ins = one(text + "\n")
    assert [(k, expand(v or "", {})) for k, v in ins.pairs] == pairs
