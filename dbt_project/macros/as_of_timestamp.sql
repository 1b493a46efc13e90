{# "Now" for data rules and marts: var('as_of') (UTC, for reproducible replays) if set, else utc_now(). #}
{% macro as_of_timestamp() -%}
    {{ return(adapter.dispatch('as_of_timestamp', 'fhir_elt')()) }}
{%- endmacro %}

{% macro default__as_of_timestamp() -%}
    {%- set as_of = var('as_of', none) -%}
    {%- if as_of -%}
        cast('{{ as_of }}' as timestamp)
    {%- else -%}
        {{ fhir_elt.utc_now() }}
    {%- endif -%}
{%- endmacro %}

{% macro duckdb__as_of_timestamp() -%}
    {{ fhir_elt.default__as_of_timestamp() }}
{%- endmacro %}

{% macro snowflake__as_of_timestamp() -%}
    {%- set as_of = var('as_of', none) -%}
    {%- if as_of -%}
        '{{ as_of }}'::timestamp_ntz
    {%- else -%}
        {{ fhir_elt.utc_now() }}
    {%- endif -%}
{%- endmacro %}
