{# The zero-based array position of the current element of a flatten_json_array() join. #}
{% macro flattened_index(alias) -%}
    {{ return(adapter.dispatch('flattened_index', 'fhir_elt')(alias)) }}
{%- endmacro %}

{% macro default__flattened_index(alias) -%}
    {{ alias }}.index
{%- endmacro %}

{% macro duckdb__flattened_index(alias) -%}
    cast({{ alias }}.key as integer)
{%- endmacro %}

{% macro snowflake__flattened_index(alias) -%}
    {{ alias }}.index
{%- endmacro %}
