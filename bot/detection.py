"""Is this message a question, a help request, a thanks, small talk? Pure, precompiled, English and French.

These run on every message, so they are written for speed: the text is lower-cased and split into words once
per message (`Reading`, which the tracker holds only while it handles the event), searched patterns begin with
literals (which the regex engine scans for quickly) and costly ones sit behind a cheap literal gate. The
`is_*` functions read one text once. Nothing here keeps text.
"""

from __future__ import annotations

import re

__all__ = [
    "Reading",
    "addressee",
    "is_chatter",
    "is_help_request",
    "is_personal",
    "is_question",
    "is_thanks",
    "strip_addressing",
]

# "nick: text", "nick, text", "@nick text" (IRC, Matrix, Gitter). The token is only a candidate: callers check
# it against known authors, since "Error: ..." looks the same.
_ADDRESS = re.compile(r"\s*@?([^\s:,@]{1,40})\s*[:,]\s+(?=\S)")
_AT_ADDRESS = re.compile(r"\s*@([^\s:,@]{1,40})[\s:,]+(?=\S)")
_NOT_NICKS = frozenset(
    """
    hi hey hello hallo yo ok okay so well yes yeah yep no nope nah and but also then now hmm hm oh ah sorry
    please thanks thx btw anyway actually guys all everyone folks people note edit update ps why what how where
    when which who whom whose is are can could would should does do did bonjour salut coucou merci oui non
    alors donc bon bref voila voilà tiens dites dis pourquoi comment quand quel quelle quels quelles qui solved
    fixed résolu resolu done nvm cheers ty great cool nice right true exactly indeed sure wait error warning
    question problem hint tip nb fyi
    """.split()  # noqa: SIM905
)

# Noise that hides the shape of a sentence: links, inline code, placeholders left by exporters.
_NOISE = re.compile(r"https?://\S+|`[^`]*`|\[<-[a-z]+->\]|www\.\S+")
# Trailing emoticons, emoji, "...", "!" after the last word: "how do I do that? :)".
_TAIL = re.compile(
    r"(?:\s*(?:[:;=][-'^o]?[()\[\]dpo03/\\|*<>$@]+|x+d+|\^\^+|<3+|:[a-z0-9_+-]+:|\([yn]\)"
    r"|[\u2600-\u27bf\U0001f000-\U0001faff\ufe0f\u200d]+|\.{2,}|!+))+\s*$"
)
_PLAIN_END = frozenset("abcefghijklmnqrstuvwyz12456789?\"'")
# A question mark that ends a sentence (not "?foo=bar").
_QMARK = re.compile(r"\?+[!.]*(?:\s|$)")

_GREETING = (
    r"(?:hi|hii+|hey|heya|hello|helo|yo|howdy|morning|good\ (?:morning|evening|afternoon)"
    r"|bonjour|bonsoir|salut|coucou)"
)
# Greetings, presence checks and reflexes that end with "?" but ask nothing answerable.
_CHATTER = re.compile(
    rf"""(?:{_GREETING}[\s,!.]*(?:all|everyone|everybody|guys|folks|people|there|tout\ le\ monde|[àa]\ tous|les\ gens)?
         [\s,!.:]*)*
    (?:
        (?:are\ you|you)\ sure | really | seriously | what\ do\ you\ mean | what\ does\ that\ mean | why\ not
      | how\ so | is\ it | are\ you | isn'?t\ it | right | huh | what | pardon | you\ there | still\ there
      | how\ (?:are|r)\ (?:you|u|ya|things|we)(?:\ (?:all|guys|doing|today|folks))* | how\ (?:is|'?s)\ it\ going
      | how\ goes\ it | how\ do\ you\ do | (?:what'?s|wh?at)\ up | sup | (?:and\ )?(?:what\ about\ )?you
      | (?:is\ )?(?:any|some)(?:one|body)\ (?:here|there|around|alive|awake|online|home|in\ here|up)
      | (?:est-ce\ qu')?il\ y\ a\ quelqu'un(?:\ (?:ici|l[aà]))? | quelqu'un\ (?:ici|l[aà])
      | (?:[çc]a|comment)\ va(?:s|\ bien)?(?:\ (?:tout\ le\ monde|vous|toi|les\ gens))? | quoi\ de\ neuf
      | comment\ allez[- ]vous | vraiment | s[ée]rieux | c'est\ vrai | ah\ bon | pourquoi\ pas | tu\ es\ s[uû]r
      | t'es\ s[uû]r | vous\ [êe]tes\ s[uû]rs?
    )?[\s?!.,:;)(]*$""",
    re.VERBOSE,
)
# Laughter, acknowledgements, comings and goings: never an answer.
_SMALL_TALK = re.compile(
    r"""(?:l+o+l+|lmao|rofl|ha(?:ha)+h?|he(?:he)+h?|hi(?:hi)+|x+d+|ok(?:ay)?|k|kk|cool|nice|great|wow|oops|meh|ugh
    |hmm+|hm+|oh+|ah+|bah|yay|bye|cya|brb|bbl|afk|back|re|night|gn|good\ night|welcome|wb|np|no\ problem|chuckles
    |sighs|grins|smiles|laughs|:\)|:\(|:d|:p|;\)|\^\^|<3|o/|\\o|\\o/|\+1|-1|mdr|ptdr|bonne\ nuit|a\+|@\+|bisous)
    (?:\s+(?:all|everyone|guys|folks|people|again|tout\ le\ monde|[àa]\ tous))?[\s!.,:;?]*$""",
    re.VERBOSE,
)
# "Me too", "same problem here": someone else has the problem, which answers nothing.
_ME_TOO = re.compile(
    r"""(?:\+1[\s,.!]*)?(?:
        me\ (?:too|as\ well) | same\b | (?:i|we)(?:'m|\ am|'re|\ are)?\ (?:also\ )?(?:have|had|got|get|having|seeing
        |facing|getting)\ (?:the\ )?same\b | having\ the\ same\b | moi\ aussi | pareil | idem
      | m[êe]me\ (?:probl[èe]me|souci|erreur) | j'ai\ (?:le|la)\ m[êe]me)""",
    re.VERBOSE,
)
_PRONOUN = r"(?:i|you|u|we|they|he|she|one|someone|somebody|anyone|anybody|people|ubuntu|linux)"
_DETERMINER = r"(?:it|this|that|there|the|my|your|a|an|these|those|any)"
# Openings that make a question without a question mark (chat users often omit it).
_OPENING = re.compile(
    rf"""(?:(?:{_GREETING}|ok|okay|so|well|also|and|but|btw|guys|all|folks|everyone|sorry|please|quick\ question
          |alors|donc|bon|svp|excusez-moi|d[ée]sol[ée])[\s,.:;!-]+)*
    (?:
        (?:what|how|why|where|which|who|whom|whose)\b(?!\ (?:a|an)\b)
      | (?:can|could|would|will|should|shall|may|might)\ (?:{_PRONOUN}|{_DETERMINER})\b
      | do\ {_PRONOUN}\b | (?:does|did)\ (?:{_PRONOUN}|{_DETERMINER})\b
      | (?:is|are|was|were|isn'?t|aren'?t|doesn'?t|didn'?t|can'?t|won'?t|has|have|hasn'?t|haven'?t)
          \ (?:{_PRONOUN}|{_DETERMINER})\b
      | (?:any|some)(?:one|body)\ (?:know|knows|have|has|here|got|use|used|using|tried|seen|familiar|able|can|could
          |willing|else|around|with|experienc|run|running)
      | any\ (?:idea|ideas|clue|clues|suggestions?|tips?|hints?|pointers?|help|advice|way)\b
      | (?:comment|pourquoi|o[uù]|combien|quel|quelle|quels|quelles|lequel|laquelle|lesquels|lesquelles)\b
      | est-ce\ qu | qu'est-ce | qu'est\ ce | est\ ce\ qu | y\ a-t-il | y-a-t-il
      | qui\ (?:a|sait|peut|conna[iî]t|utilise)\b
      | (?:peut|pourrait|puis|sait|savez|sais|avez|as|connaissez|connais|pouvez|peux|faut|dois|doit|devrait)
          -(?:on|je|tu|il|elle|vous|nous|t-il|t-on|t-elle|ils|elles)\b
    )""",
    re.VERBOSE,
)
# Help phrases anywhere, by the word that must be present for each to match: only the patterns of words found
# in the text run, so the common case costs a few dictionary lookups.
_ANYONE = (
    r"(?:does|do|did|has|have|is|can|could|would|will) (?:any|some)(?:one|body)\b"
    r"|(?:any|some)(?:one|body) (?:know|knows|here know|familiar|have (?:an? )?idea|can help|could help"
    r"|(?:here )?(?:has|have|got) (?:any )?(?:experience|luck|success)|tried|managed|use[sd]? )"
)
_WAY = r"is (?:there|it) (?:a|any) (?:way|chance|option|method)\b|is it possible\b|est-ce possible\b"
_IDEA = r"une (?:petite )?id[ée]e\b|des id[ée]es\b"
_ARRIVE = r"n'arrive pas\b|narrive pas\b|j'arrive pas\b"
_QUESTION = (
    r"(?:have|got) a (?:quick |small |little |stupid |noob |newbie |simple )?question\b"
    r"|j'ai une (?:petite )?question\b"
)
_HELP_BY_WORD: dict[str, re.Pattern[str]] = {
    word: re.compile(pattern)
    for words, pattern in [
        ("anyone anybody someone somebody", _ANYONE),
        ("any", r"any (?:idea|ideas|clue|suggestions?|pointers?|hints?|advice)\b"),
        ("help", r"need (?:some |your )?help\b|help me\b|please help\b"),
        ("how", r"how (?:do|can|could|should|would) (?:i|we|you|one)\b"),
        ("way chance option method possible", _WAY),
        ("stuck", r"(?:i'?m|i am|been|got|get) stuck\b"),
        ("figure", r"can'?t figure\b|cannot figure\b"),
        ("sure", r"not sure (?:how|why|what|if|whether)\b"),
        ("wonder wondering", r"wonder(?:ing)? (?:if|whether|how|why|what)\b"),
        ("know understand", r"(?:don'?t|do not) (?:know|understand) (?:how|why|what|where|which)\b"),
        ("question", _QUESTION),
        ("quelqu'un", r"quelqu'un (?:sait|saurait|a|aurait|peut|pourrait|conna[iî]t|utilise|s'y)\b|quelqu'un d'entre"),
        ("besoin", r"besoin d'(?:aide|un coup de main)"),
        ("aidez-moi aidez", r"aidez[- ]moi"),
        ("idée idee idées idees", _IDEA),
        ("comment", r"comment (?:faire|on|je|puis-je|peut-on|faites)\b"),
        ("n'arrive narrive j'arrive", _ARRIVE),
        ("sais", r"ne sais pas (?:comment|pourquoi|quoi|o[uù])\b"),
        ("demande", r"me demande (?:si|comment|pourquoi)\b"),
        ("savez-vous pouvez-vous", r"savez-vous\b|pouvez-vous\b"),
        ("sauriez", r"vous sauriez\b"),
        ("solution", r"une solution pour\b"),
    ]
    for word in words.split()
}


_HELP_WORDS = frozenset(_HELP_BY_WORD)


def _help_phrase(core: str, words: list[str]) -> bool:
    if _HELP_WORDS.isdisjoint(words):  # the common case: no set is built
        return False
    return any(_HELP_BY_WORD[w].search(core) for w in _HELP_WORDS.intersection(words))


# "I'm trying to", "we need", "je cherche": a person describing their own problem.
_NEED_GATE = re.compile(r"try|want|need|like to|have a|having|get|got|can|could|unable|wonder|stuck|j'|je ")
_NEED = re.compile(
    r"""(?:i|we|im)(?:'m|’m|\ am|'ve\ been|\ have\ been|\ was|\ are|'d|\ would)?\s+
    (?:trying|want|wanted|need|needed|like\ to|have\ a\ (?:problem|question|issue)|having|get|got|getting
      |keep\ getting|can'?t|cannot|couldn'?t|unable|wonder|wondering|stuck)\b
    | j'(?:ai\ (?:un|une|des)\ (?:probl[èe]me|souci|erreur|question)|essaie|aimerais|voudrais)
    | je\ (?:voudrais|veux|cherche|n'arrive|ne\ parviens|souhaite|bloque)\b""",
    re.VERBOSE,
)
_THANKS = re.compile(
    r"""thank | thx | thnx | thanx | tnx | tyvm | cheers | kudos | much\ appreciated | merci | solved | fixed\ it
      | it'?s\ fixed | that\ worked | this\ worked | it\ worked | it\ works | works\ now | working\ now
      | that\ did\ (?:it|the\ trick) | got\ it\ working | figured\ it\ out | r[ée]solu | [çc]a\ marche
      | [çc]a\ fonctionne | [çc]a\ a\ (?:march|fonctionn) | c'est\ bon\b | nickel\b""",
    re.VERBOSE,
)
_TY = re.compile(r"(?:^|[\s,.!(])(?:ty|fixed)(?:$|[\s,.!:;)])")

# Cheap gates: a costly pattern only runs when one of its words is present.
_PUNCT = '!"#$%&()*+,./:;<=>?@[\\]^_`{|}~«»“”…'
# Words are split on the UTF-8 bytes: `bytes.translate` is a plain table look-up per byte (every byte of a
# multi-byte character is 0x80 or more and maps to itself), where `str.translate` with a table pays a dictionary
# look-up per character. The few punctuation characters beyond ASCII are then replaced in the text.
_PUNCT_BYTES = bytes(32 if chr(i) in _PUNCT and i < 128 else i for i in range(256))
_WIDE_PUNCT = tuple(c for c in _PUNCT if not c.isascii())
_CHATTER_WORDS = 12
# `_CHATTER` matches a text with letters only if it opens with a greeting or with one of these words.
_CHATTER_OPENERS = ("hi", "hey", "hello", "helo", "yo", "howdy", "morning", "good", "bonjour", "bonsoir", "salut",
                    "coucou")  # fmt: skip
_CHATTER_FIRST = frozenset(
    """
    are you really seriously what why how is isn't isnt right huh pardon still what's whats wat sup and anyone
    anybody someone somebody est-ce il quelqu'un ça ca comment quoi vraiment sérieux serieux c'est ah pourquoi tu
    t'es vous
    """.split()  # noqa: SIM905
)
# The first two characters of every word above: a word whose first two are not among them can be neither.
_CHATTER_HEADS = frozenset(w[:2] for w in (*_CHATTER_FIRST, *_CHATTER_OPENERS))
#: `_SMALL_TALK` matches at most this many words ("bonne nuit tout le monde").
_SMALL_TALK_WORDS = 5
# The author as subject or owner ("I", "my"), not as object: "tell me what you see?" is a question back.
_SELF_WORDS = frozenset(
    """
    i i'm im i've ive i'd i'll my mine myself we we're we've our ours je j'ai j'aimerais j'essaie j'arrive
    mon ma mes nous notre nos
    """.split()  # noqa: SIM905
)
_NEED_WORDS = frozenset(
    """
    trying want wanted need needed like have having get got getting can't cant cannot couldn't couldnt unable wonder
    wondering stuck j'ai j'essaie j'aimerais j'voudrais voudrais veux cherche n'arrive parviens souhaite bloque
    """.split()  # noqa: SIM905
)
#: Without one of these words a text is no help request (`Reading.help`).
_HELP_OR_NEED_WORDS = _HELP_WORDS | _NEED_WORDS
_THANKS_WORDS = frozenset(
    """
    thanks thank thankyou thanx thnx thx tnx ty tyvm cheers kudos appreciated merci solved fixed worked works
    working trick figured résolu resolu marche fonctionne marché marche fonctionné bon nickel
    """.split()  # noqa: SIM905
)
_NOT_THANKS = re.compile(
    r"""no\ (?:thanks|thank\ you|thx) | non\ merci | in\ advance | \btia\b | d'avance | par\ avance | anyway
      | quand\ m[êe]me | not\ (?:solved|fixed|working) | doesn'?t\ work | don'?t\ work | not\ work
      | still\ (?:not|doesn'?t|broken|fails|failing) | ne\ marche\ (?:pas|plus) | marche\ pas | pas\ r[ée]solu
      | ne\ fonctionne\ (?:pas|plus) | thanks\ but | merci\ mais | \?""",
    re.VERBOSE,
)


def _address_match(text: str) -> re.Match[str] | None:
    m = (_AT_ADDRESS if text[:1] == "@" else _ADDRESS).match(text)
    if m is None or m.group(1).lower() in _NOT_NICKS:
        return None
    return m


def addressee(text: str) -> str | None:
    """The token a message is addressed to by a leading `nick:` / `nick,` / `@nick`, or None.

    Callers check the token against known authors: "Error: ..." also looks like addressing.
    """
    m = _address_match(text)
    return m.group(1) if m is not None else None


def strip_addressing(text: str) -> str:
    """`text` without a leading `nick:` / `nick,` / `@nick` addressing."""
    m = _address_match(text)
    return text[m.end() :] if m is not None else text


def _words(s: str) -> list[str]:
    """The words of `s`: runs of characters between spaces and punctuation."""
    if s.isascii():
        return s.encode().translate(_PUNCT_BYTES).decode().split()
    # "surrogatepass": a lone surrogate (valid in JSON text) goes through unchanged.
    s = s.encode("utf-8", "surrogatepass").translate(_PUNCT_BYTES).decode("utf-8", "surrogatepass")
    for c in _WIDE_PUNCT:
        if c in s:
            s = s.replace(c, " ")
    return s.split()


class Reading:
    """One message's text, read once for every test the tracker makes of it; it lives as long as the event.

    The addressing is found at once; the cleaned text (lower-cased, without addressing, links, code,
    placeholders and trailing emoticons) and its words only when a test needs them.
    """

    __slots__ = ("_core", "_phrase", "_start", "_words", "nick", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        #: The leading `nick:` / `nick,` / `@nick` token, if any (callers check it against known authors).
        self.nick: str | None = None
        self._start = 0
        #: The cleaned text, once a test needed it; `_words` and `_phrase` are set with it.
        self._core: str | None = None
        if text[:1] == "@":
            m = _AT_ADDRESS.match(text)
        elif ":" in text or "," in text:  # "nick:" or "nick,"
            m = _ADDRESS.match(text)
        else:
            return
        if m is not None:
            nick = m.group(1)
            if nick.lower() not in _NOT_NICKS:
                self.nick = nick
                self._start = m.end()

    def _clean(self) -> str:
        text = self.text
        body = (text[self._start :] if self._start else text).lower()
        if "http" in body or "`" in body or "[<-" in body or "www." in body:
            body = _NOISE.sub(" ", body)
        # Trailing emoticons, emoji, "..." and "!" go; then the words (`_words`, inlined for ASCII).
        core = body.strip()
        if core:
            last = core[-1]
            if last not in _PLAIN_END and (last != "." or core.endswith("..")):
                m = _TAIL.search(core, max(0, len(core) - 48))
                if m is not None:
                    core = core[: m.start()]
        self._core = core
        if core.isascii():
            self._words: list[str] = core.encode().translate(_PUNCT_BYTES).decode().split()
        else:
            self._words = _words(core)
        #: whether the text has a help phrase, once a test needed to know
        self._phrase: bool | None = None
        return core

    def _chatter(self, core: str, words: list[str]) -> bool:
        if words:
            first = words[0]
            if first[:2] not in _CHATTER_HEADS or not (first in _CHATTER_FIRST or first.startswith(_CHATTER_OPENERS)):
                return False
        return _CHATTER.match(core) is not None

    def question(self, min_words: int = 3) -> bool:
        """See `is_question`."""
        if self.text.count(" ") + 1 < min_words:  # too few words even before cleaning
            return False
        core = self._core
        if core is None:
            core = self._clean()
        words = self._words
        n = len(words)
        if n < min_words:
            return False
        if n <= _CHATTER_WORDS:  # `_chatter`, inlined (`words` is not empty here)
            first = words[0]
            if (
                first[:2] in _CHATTER_HEADS
                and (first in _CHATTER_FIRST or first.startswith(_CHATTER_OPENERS))
                and _CHATTER.match(core) is not None
            ):
                return False
        if core[-1:] == "?" or ("?" in core and _QMARK.search(core)):
            return True
        # The help phrase first: `help` has usually found it already.
        phrase = self._phrase
        if phrase is None:
            phrase = self._phrase = _help_phrase(core, words)
        return phrase or _OPENING.match(core) is not None

    def help(self) -> bool:
        """See `is_help_request`."""
        core = self._core
        if core is None:
            core = self._clean()
        words = self._words
        if _HELP_OR_NEED_WORDS.isdisjoint(words):  # the common case: neither test can hold
            self._phrase = False
            return False
        phrase = self._phrase
        if phrase is None:
            phrase = self._phrase = _help_phrase(core, words)
        return phrase or (not _NEED_WORDS.isdisjoint(words) and _NEED.search(core) is not None)

    def personal(self) -> bool:
        """See `is_personal`."""
        if self._core is None:
            self._clean()
        return not _SELF_WORDS.isdisjoint(self._words)

    def chatter(self) -> bool:
        """See `is_chatter`."""
        core = self._core if self._core is not None else self._clean()
        if not core:
            return True
        words = self._words
        return len(words) <= _CHATTER_WORDS and (
            self._chatter(core, words)
            or (len(words) <= _SMALL_TALK_WORDS and _SMALL_TALK.match(core) is not None)
            or _ME_TOO.match(core) is not None
        )

    def thanks(self) -> bool:
        """See `is_thanks`."""
        low = self.text.lower()
        if "?" in low or _THANKS_WORDS.isdisjoint(_words(low)):
            return False
        return bool(_THANKS.search(low) or _TY.search(low)) and not _NOT_THANKS.search(low)


def is_question(text: str, min_words: int = 3) -> bool:
    """True when `text` asks something (English or French): a question mark, an interrogative opening or a help
    phrase, and not short chatter ("ok?", "really?", "hi")."""
    return Reading(text).question(min_words)


def is_help_request(text: str) -> bool:
    """True when `text` asks for help in its own right ("does anyone know", "I'm trying to", "how do I"): the
    start of a new topic rather than a reply to someone else's question."""
    return Reading(text).help()


def is_personal(text: str) -> bool:
    """True when `text` speaks of its author's own situation (I, my, we, je, mon...): a question in the first
    person is a new question, not a question back to someone else."""
    return Reading(text).personal()


def is_chatter(text: str) -> bool:
    """True for greetings, laughter, emoticons, short acknowledgements and "me too": text that answers nothing."""
    return Reading(text).chatter()


def is_thanks(text: str) -> bool:
    """True when `text` thanks someone or says it is solved (not "no thanks", "thanks in advance", a question)."""
    return Reading(text).thanks()
