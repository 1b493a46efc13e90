{# A value inside an extension by url (and optional sub-extension url), e.g. US Core race ombCategory. #}
{#
    fhir_extension('resource', var('us_core_race_url'), 'valueCoding.code', sub_url='ombCategory')
    reads the first matching extension / sub-extension; value_path is relative to it.
#}
{% macro fhir_extension(column, url, value_path, sub_url=none) -%}
    {{ return(adapter.dispatch('fhir_extension', 'fhir_elt')(column, url, value_path, sub_url)) }}
{%- endmacro %}

{% macro default__fhir_extension(column, url, value_path, sub_url) -%}
    {%- set extension = fhir_elt.json_array_find(column, 'extension', 'url', url) -%}
    {%- if sub_url is not none -%}
        {%- set extension = fhir_elt.json_array_find(extension, 'extension', 'url', sub_url) -%}
    {%- endif -%}
    {{ fhir_elt.json_string(extension, value_path) }}
{%- endmacro %}

{% macro duckdb__fhir_extension(column, url, value_path, sub_url) -%}
    {{ fhir_elt.default__fhir_extension(column, url, value_path, sub_url) }}
{%- endmacro %}

{% macro snowflake__fhir_extension(column, url, value_path, sub_url) -%}
    {%- if target.name == 'fakesnow' and sub_url is not none -%}
        {#- fakesnow cannot flatten the result of a subquery (json_array_find's fakesnow
            form), so the extension and its sub-extension are flattened side by side -#}
        (
            select {{ fhir_elt.json_string('sub.value', value_path) }}
            from table(flatten(input => {{ fhir_elt.snowflake_variant_path(column, 'extension') }})) as ext,
                table(flatten(input => ext.value:extension)) as sub
            where ext.value:url::string = '{{ url }}' and sub.value:url::string = '{{ sub_url }}'
            order by ext.index, sub.index
            limit 1
        )
    {%- else -%}
        {{ fhir_elt.default__fhir_extension(column, url, value_path, sub_url) }}
    {%- endif -%}
{%- endmacro %}
