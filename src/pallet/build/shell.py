"""Variable substitution in Dockerfile words, after BuildKit's `frontend/dockerfile/shell`
lexer (which docker's classic builder uses too).

A word is scanned once: the escape character takes the next character literally, single
quotes take everything literally, double quotes allow `$` expansion and escape only `"`,
`$` and the escape character, and the quotes themselves are removed.
Expansions: `$VAR`, `${VAR}`, `${VAR:-word}` (word when unset or empty), `${VAR-word}`
(when unset), `${VAR:+word}` (word when set and not empty), `${VAR+word}` (when set),
`${VAR:?msg}` / `${VAR?msg}` (an error). The `word` of a modifier is itself expanded.
"""

from __future__ import annotations

from collections.abc import Mapping

from pallet.errors import InvalidArgument

_SPECIAL = "@*#?-$!0"  # the shell's special parameters: never set in a build


class _Scan:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text, self.env, self.escape = text, env, escape
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def word(self, stop: str = "") -> str:
        """Up to `stop` (consumed) or the end; `stop` missing is an error."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                if stop:
                    raise InvalidArgument("unexpected end of statement while looking for "
                                          f"matching {stop}")
                return "".join(out)
            if stop and ch == stop:
                self.pos += 1
                return "".join(out)
            if ch == self.escape:
                self.pos += 1
                out.append(self.next())  # an escape at the very end disappears
            elif ch == "'":
                out.append(self._single())
            elif ch == '"':
                out.append(self._double())
            elif ch == "$":
                out.append(self._dollar())
            else:
                out.append(ch)
                self.pos += 1

    def _single(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        if end < 0:
            raise InvalidArgument("unexpected end of statement while looking for matching "
                                  "single-quote")
        out = self.text[self.pos:end]
        self.pos = end + 1
        return out

    def _double(self) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise InvalidArgument("unexpected end of statement while looking for "
                                      "matching double-quote")
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self.pos += 1
            if ch == self.escape and self.peek() in ('"', "$", self.escape) and self.peek():
                ch = self.next()
            out.append(ch)

    def _name(self) -> str:
        start = self.pos
        if self.peek().isdigit():  # positional: `$1x` is `$1` then `x`
            while self.peek().isdigit():
                self.pos += 1
            return self.text[start:self.pos]
        if self.peek() and self.peek() in _SPECIAL:
            self.pos += 1
            return self.text[start:self.pos]
        while self.peek() and (self.peek().isalnum() or self.peek() == "_") \
                and self.peek().isascii():
            self.pos += 1
        return self.text[start:self.pos]

    def _dollar(self) -> str:
        self.pos += 1
        if self.peek() != "{":
            name = self._name()
            return self.env.get(name, "") if name else "$"
        self.pos += 1
        if not self.peek():
            raise InvalidArgument("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise InvalidArgument("syntax error: bad substitution")
        name = self._name()
        if not name:
            raise InvalidArgument("syntax error: bad substitution")
        value = self.env.get(name)
        ch = self.next()
        if not ch:
            raise InvalidArgument("syntax error: missing '}'")
        if ch == "}":
            return value or ""
        colon = ch == ":"
        modifier = self.next() if colon else ch
        if modifier not in ("-", "+", "?"):
            if colon:
                raise InvalidArgument(f"unsupported modifier ({modifier}) in substitution")
            raise InvalidArgument("missing ':' in substitution")
        word = self.word("}")
        unset = value is None or (colon and value == "")
        if modifier == "-":
            return word if unset else value or ""
        if modifier == "+":
            return "" if unset else word
        if unset:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        return value or ""


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """`word` with quotes removed and variables substituted from `env`."""
    return _Scan(word, env, escape).word()


def split_words(rest: str, escape: str = "\\") -> list[str]:
    """Split at unquoted whitespace, keeping quotes and escapes in the words (BuildKit's
    `parseWords`): `ENV a="b c" d=e` -> [`a="b c"`, `d=e`]; `expand` removes them later."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    blank_ok = False
    i = 0
    n = len(rest)
    while i < n:
        ch = rest[i]
        if ch == escape and quote != "'":  # kept with the character it escapes
            if i + 1 == n:
                break
            word += (ch, rest[i + 1])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            word.append(ch)
        elif ch.isspace():
            if word or blank_ok:
                words.append("".join(word))
            word, blank_ok = [], False
        else:
            if ch in ("'", '"'):
                quote, blank_ok = ch, True
            word.append(ch)
        i += 1
    if word or blank_ok:
        words.append("".join(word))
    return words
