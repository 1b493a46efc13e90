{# A FHIR Quantity element: part = value (double) | unit | code (UCUM) | system. #}
{% macro fhir_quantity(column, path, part='value') -%}
    {%- if part not in ('value', 'unit', 'code', 'system') -%}
        {{ exceptions.raise_compiler_error("fhir_quantity: part must be value, unit, code or system, got " ~ part) }}
    {%- endif -%}
    {{ return(adapter.dispatch('fhir_quantity', 'fhir_elt')(column, path, part)) }}
{%- endmacro %}

{% macro default__fhir_quantity(column, path, part) -%}
    {%- if part == 'value' -%}
        {{ fhir_elt.json_number(column, path ~ '.value') }}
    {%- else -%}
        {{ fhir_elt.json_string(column, path ~ '.' ~ part) }}
    {%- endif -%}
{%- endmacro %}

{% macro duckdb__fhir_quantity(column, path, part) -%}
    {{ fhir_elt.default__fhir_quantity(column, path, part) }}
{%- endmacro %}

{% macro snowflake__fhir_quantity(column, path, part) -%}
    {{ fhir_elt.default__fhir_quantity(column, path, part) }}
{%- endmacro %}
