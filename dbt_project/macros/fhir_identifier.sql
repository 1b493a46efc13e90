{# The value of the first Identifier with a given system (e.g. the MRN), or null. #}
{% macro fhir_identifier(column, system, path='identifier') -%}
    {{ return(adapter.dispatch('fhir_identifier', 'fhir_elt')(column, system, path)) }}
{%- endmacro %}

{% macro default__fhir_identifier(column, system, path) -%}
    {{ fhir_elt.json_string(fhir_elt.json_array_find(column, path, 'system', system), 'value') }}
{%- endmacro %}

{% macro duckdb__fhir_identifier(column, system, path) -%}
    {{ fhir_elt.default__fhir_identifier(column, system, path) }}
{%- endmacro %}

{% macro snowflake__fhir_identifier(column, system, path) -%}
    {{ fhir_elt.default__fhir_identifier(column, system, path) }}
{%- endmacro %}
