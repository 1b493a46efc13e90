"""Static checks that SQL is plausible Snowflake SQL, without a Snowflake account.

Two independent parsers, because each misses what the other catches and fakesnow (the emulator
the dbt project also runs on) accepts DuckDB-only SQL:

* :func:`snowflake_sql_problems`: sqlglot's Snowflake dialect, plus a check that no function is
  unknown to it (``exp.Anonymous``), plus a token scan for DuckDB-only functions and operators
  that sqlglot parses without complaint (``json_extract_string``, ``->>``, ``json_each``...);
* :func:`sqlfluff_problems`: sqlfluff's Snowflake dialect (the parser the project lints with),
  which reports any section it cannot parse (it catches ``->>``, for one).

Neither executes anything or resolves tables, columns, types or function signatures.
"""

from __future__ import annotations

import sqlglot
from sqlfluff.core import FluffConfig, Linter
from sqlglot import exp
from sqlglot.dialects.snowflake import Snowflake
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

# Real Snowflake functions that sqlglot parses as exp.Anonymous (it does not model them). Add a
# name here only after checking the Snowflake documentation; anything else unknown fails.
ALLOWED_UNKNOWN_FUNCTIONS = frozenset(
    {
        # TRY_TO_TIMESTAMP_TZ: https://docs.snowflake.com/en/sql-reference/functions/try_to_timestamp
        "try_to_timestamp_tz",
    }
)

# DuckDB functions that do not exist in Snowflake. sqlglot knows several of them (json_extract,
# regexp_extract, string_agg, unnest...) and parses them under the Snowflake dialect without
# complaint, so the unknown-function check alone would miss them; all are named here so the
# failure says what is wrong.
DUCKDB_ONLY_FUNCTIONS = frozenset(
    {
        "json_extract_string",
        "json_extract",  # Snowflake: col:path / get_path()
        "json_each",  # Snowflake: lateral flatten()
        "json_tree",
        "list_filter",  # Snowflake: filter()
        "list_transform",
        "regexp_extract",  # Snowflake: regexp_substr()
        "regexp_matches",
        "string_agg",  # Snowflake: listagg()
        "strftime",
        "unnest",
    }
)

_LITERAL_TOKENS = {
    TokenType.STRING,
    TokenType.RAW_STRING,
    TokenType.NATIONAL_STRING,
    TokenType.HEREDOC_STRING,
    TokenType.BIT_STRING,
    TokenType.HEX_STRING,
    TokenType.BYTE_STRING,
}


def snowflake_sql_problems(sql: str) -> list[str]:
    """Why ``sql`` is not plausible Snowflake SQL (empty list: no problem found)."""
    if not (sql or "").strip():
        return ["no SQL (the node compiled to nothing)"]
    try:
        tokens = Snowflake().tokenize(sql)
        statements = [s for s in sqlglot.parse(sql, read="snowflake") if s is not None]
    except (ParseError, TokenError) as error:
        return [f"does not parse as Snowflake SQL: {str(error).splitlines()[0]}"]

    # Token scan: string literals and comments are not tokens, so text inside them is ignored.
    found: dict[str, list[int]] = {}
    for token, following in zip(tokens, [*tokens[1:], None], strict=True):
        name = token.text.lower()
        is_call = following is not None and following.token_type == TokenType.L_PAREN
        if token.token_type not in _LITERAL_TOKENS and is_call and name in DUCKDB_ONLY_FUNCTIONS:
            found.setdefault(f"DuckDB-only function {name}()", []).append(token.line)
        if token.token_type == TokenType.DARROW:
            found.setdefault("DuckDB JSON operator ->>", []).append(token.line)
        # Snowflake uses -> only for lambdas (filter(arr, x -> ...)); `json -> '$.path'` is DuckDB.
        if (
            token.token_type == TokenType.ARROW
            and following is not None
            and following.token_type in _LITERAL_TOKENS
        ):
            found.setdefault("DuckDB JSON operator -> '<path>'", []).append(token.line)
    problems = {
        f"{problem} (compiled SQL line {', '.join(map(str, sorted(set(lines))))})"
        for problem, lines in found.items()
    }

    for statement in statements:
        for function in statement.find_all(exp.Anonymous):
            if function.name.lower() not in ALLOWED_UNKNOWN_FUNCTIONS:
                problems.add(f"function unknown to sqlglot's Snowflake dialect: {function.name}")
        for data_type in statement.find_all(exp.DataType):
            if data_type.this == exp.DataType.Type.JSON:
                problems.add("type json (DuckDB); Snowflake uses variant / parse_json()")
    return sorted(problems)


_SQLFLUFF = Linter(
    config=FluffConfig(
        overrides={"dialect": "snowflake", "templater": "raw"}, require_dialect=False
    )
)


def sqlfluff_problems(sql: str) -> list[str]:
    """Sections of ``sql`` sqlfluff's Snowflake dialect cannot lex or parse (empty: none)."""
    parsed = _SQLFLUFF.parse_string(sql)
    return sorted({f"sqlfluff (snowflake): {violation.desc()}" for violation in parsed.violations})
