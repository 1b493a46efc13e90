{# A FHIR Period bound as a UTC timestamp: part = start | end. #}
{% macro fhir_period(column, path, part='start') -%}
    {%- if part not in ('start', 'end') -%}
        {{ exceptions.raise_compiler_error("fhir_period: part must be start or end, got " ~ part) }}
    {%- endif -%}
    {{ return(adapter.dispatch('fhir_period', 'fhir_elt')(column, path, part)) }}
{%- endmacro %}

{% macro default__fhir_period(column, path, part) -%}
    {{ fhir_elt.json_timestamp(column, path ~ '.' ~ part) }}
{%- endmacro %}

{% macro duckdb__fhir_period(column, path, part) -%}
    {{ fhir_elt.duckdb__json_timestamp(column, path ~ '.' ~ part) }}
{%- endmacro %}

{% macro snowflake__fhir_period(column, path, part) -%}
    {{ fhir_elt.snowflake__json_timestamp(column, path ~ '.' ~ part) }}
{%- endmacro %}
