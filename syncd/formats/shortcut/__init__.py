"""The unchanged-counterparty shortcut, at the byte level: a counterparty whose bytes are exactly those
syncd last applied is cut out of the stream before the parser sees it (`bytefilter`), its ids taken
from the bytes (`xmlsplit`, `jsonsplit`). The rule every filter upholds: what it lets through parses
exactly as the unfiltered bytes would, and a counterparty it is not sure of goes to the parser whole."""
