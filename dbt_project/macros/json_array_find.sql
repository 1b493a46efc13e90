{# The first element of a JSON array whose key equals a value (e.g. the coding with a given system). #}
{#
    Returns a JSON (DuckDB) / VARIANT (Snowflake) expression, or null when nothing matches;
    feed it to json_string() and friends. `array_path` and `key_path` are written once,
    e.g. json_array_find('resource', 'identifier', 'system', 'http://hospital.example.org/mrn').
#}
{% macro json_array_find(column, array_path, key_path, value) -%}
    {{ return(adapter.dispatch('json_array_find', 'fhir_elt')(column, array_path, key_path, value)) }}
{%- endmacro %}

{% macro default__json_array_find(column, array_path, key_path, value) -%}
    {{ exceptions.raise_compiler_error('json_array_find is not implemented for ' ~ target.type) }}
{%- endmacro %}

{% macro duckdb__json_array_find(column, array_path, key_path, value) -%}
    list_filter(
        json_extract({{ column }}, '$.{{ array_path }}[*]'),
        lambda item: json_extract_string(item, '$.{{ key_path }}') = '{{ value }}'
    )[1]
{%- endmacro %}

{% macro snowflake__json_array_find(column, array_path, key_path, value) -%}
    {%- if target.name == 'fakesnow' -%}
        {#- fakesnow runs filter() on a VARIANT array as DuckDB list_filter, which fails (or
            returns null after to_array()); a correlated flatten finds the same element -#}
        (
            select found.value
            from table(flatten(input => {{ fhir_elt.snowflake_variant_path(column, array_path) }})) as found
            where found.value:{{ key_path }}::string = '{{ value }}'
            order by found.index
            limit 1
        )
    {%- else -%}
        get(
            filter(
                {{ fhir_elt.snowflake_variant_path(column, array_path) }},
                item -> item:{{ key_path }}::string = '{{ value }}'
            ),
            0
        )
    {%- endif -%}
{%- endmacro %}
