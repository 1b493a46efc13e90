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
    {%- if target.name == 'fakesnow' -%}
        {#- fakesnow lacks try_to_timestamp_tz (see notes/snowflake-without-an-account.md) -#}
        convert_timezone('UTC', to_timestamp_tz({{ fhir_elt.snowflake_variant_path(column, path) }}::string))::timestamp_ntz
    {%- else -%}
        convert_timezone('UTC', try_to_timestamp_tz({{ fhir_elt.snowflake_variant_path(column, path) }}::string))::timestamp_ntz
    {%- endif -%}
{%- endmacro %}
