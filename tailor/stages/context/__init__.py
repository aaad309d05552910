"""Repository context at completion time: a per-team code index built from a harvested dataset
(symbols and a lexical index over code chunks) and the assembly of a request's context from it."""
