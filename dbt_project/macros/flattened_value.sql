{# The current element (JSON / VARIANT) of a flatten_json_array() join. #}
{% macro flattened_value(alias) -%}
    {{ return(adapter.dispatch('flattened_value', 'fhir_elt')(alias)) }}
{%- endmacro %}

{% macro default__flattened_value(alias) -%}
    {{ alias }}.value
{%- endmacro %}

{% macro duckdb__flattened_value(alias) -%}
    {{ alias }}.value
{%- endmacro %}

{% macro snowflake__flattened_value(alias) -%}
    {{ alias }}.value
{%- endmacro %}
