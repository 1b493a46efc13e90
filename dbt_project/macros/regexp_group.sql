{# Capture group N of a regular expression applied to a string, or null when it does not match. #}
{% macro regexp_group(value, pattern, group) -%}
    {{ return(adapter.dispatch('regexp_group', 'fhir_elt')(value, pattern, group)) }}
{%- endmacro %}

{% macro default__regexp_group(value, pattern, group) -%}
    {{ exceptions.raise_compiler_error('regexp_group is not implemented for ' ~ target.type) }}
{%- endmacro %}

{% macro duckdb__regexp_group(value, pattern, group) -%}
    {#- regexp_extract gives '' (not null) when the pattern does not match -#}
    nullif(regexp_extract({{ value }}, '{{ pattern }}', {{ group }}), '')
{%- endmacro %}

{% macro snowflake__regexp_group(value, pattern, group) -%}
    regexp_substr({{ value }}, '{{ pattern }}', 1, 1, 'e', {{ group }})
{%- endmacro %}
