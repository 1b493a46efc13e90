{# A JSON document literal as the engine's JSON type (for unit-test fixtures): json / VARIANT. #}
{% macro json_literal(text) -%}
    {{ return(adapter.dispatch('json_literal', 'fhir_elt')(text)) }}
{%- endmacro %}

{% macro default__json_literal(text) -%}
    cast('{{ text | replace("'", "''") }}' as json)
{%- endmacro %}

{% macro duckdb__json_literal(text) -%}
    cast('{{ text | replace("'", "''") }}' as json)
{%- endmacro %}

{% macro snowflake__json_literal(text) -%}
    parse_json('{{ text | replace("'", "''") }}')
{%- endmacro %}
