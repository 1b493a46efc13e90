{# A FHIR dateTime/instant at a path as a UTC timestamp without time zone (null if partial/invalid). #}
{#
    FHIR dateTime values carry an offset ("2024-03-01T10:00:00+02:00") or are dates
    ("2024-03-01", read as midnight UTC). Partial dates ("2024", "2024-03") become null.
#}
{% macro json_timestamp(column, path) -%}
    {{ return(adapter.dispatch('json_timestamp', 'fhir_elt')(column, path)) }}
{%- endmacro %}

{% macro default__json_timestamp(column, path) -%}
    cast({{ fhir_elt.json_string(column, path) }} as timestamp)
{%- endmacro %}

{% macro duckdb__json_timestamp(column, path) -%}
    cast(timezone('UTC', try_cast(json_extract_string({{ column }}, '$.{{ path }}') as timestamptz)) as timestamp)
{%- endmacro %}

{% macro snowflake__json_timestamp(column, path) -%}
    {#-
        Guard the shape first: Snowflake reads an all-digit string as epoch seconds and an
        offset-less value in the session time zone. FHIR requires an offset whenever a time
        is given, so a full date is read as midnight UTC and anything else without an
        offset (or partial) is null. fakesnow lacks try_to_timestamp_tz: there the same
        string goes through try_cast(... as timestamp_tz) (notes/snowflake-without-an-account.md).
    -#}
    {%- set value = fhir_elt.snowflake_variant_path(column, path) ~ '::string' -%}
    {%- set parse = 'try_cast({} as timestamp_tz)' if target.name == 'fakesnow' else 'try_to_timestamp_tz({})' -%}
    case
        when regexp_like({{ value }}, '[0-9]{4}-[0-9]{2}-[0-9]{2}')
            then {{ parse.format(value ~ " || 'T00:00:00+00:00'") }}::timestamp_ntz
        when regexp_like({{ value }}, '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})')
            then convert_timezone('UTC', {{ parse.format(value) }})::timestamp_ntz
    end
{%- endmacro %}
