{# A HumanName of a given use (else the first name): part = family | given (space-joined) | text. #}
{% macro fhir_human_name(column, path='name', use='official', part='family') -%}
    {%- if part not in ('family', 'given', 'text') -%}
        {{ exceptions.raise_compiler_error("fhir_human_name: part must be family, given or text, got " ~ part) }}
    {%- endif -%}
    {{ return(adapter.dispatch('fhir_human_name', 'fhir_elt')(column, path, use, part)) }}
{%- endmacro %}

{% macro default__fhir_human_name(column, path, use, part) -%}
    {{ exceptions.raise_compiler_error('fhir_human_name is not implemented for ' ~ target.type) }}
{%- endmacro %}

{% macro duckdb__fhir_human_name(column, path, use, part) -%}
    {%- set human_name -%}
        coalesce({{ fhir_elt.json_array_find(column, path, 'use', use) }}, json_extract({{ column }}, '$.{{ path }}[0]'))
    {%- endset -%}
    {%- if part == 'given' -%}
        nullif(array_to_string(json_extract_string({{ human_name }}, '$.given[*]'), ' '), '')
    {%- else -%}
        json_extract_string({{ human_name }}, '$.{{ part }}')
    {%- endif -%}
{%- endmacro %}

{% macro snowflake__fhir_human_name(column, path, use, part) -%}
    {%- set human_name -%}
        coalesce({{ fhir_elt.json_array_find(column, path, 'use', use) }}, {{ fhir_elt.snowflake_variant_path(column, path ~ '[0]') }})
    {%- endset -%}
    {%- if part == 'given' and target.name == 'fakesnow' -%}
        {#- fakesnow runs array_to_string() on a VARIANT as DuckDB list_transform, which fails:
            the given names of the chosen name (the first with this use, else the first) are
            flattened and joined instead -#}
        (
            select nullif(listagg(given.value::string, ' ') within group (order by given.index), '')
            from table(flatten(input => {{ fhir_elt.snowflake_variant_path(column, path) }})) as names,
                table(flatten(input => names.value:given)) as given
            where names.index = coalesce(
                (
                    select min(named.index)
                    from table(flatten(input => {{ fhir_elt.snowflake_variant_path(column, path) }})) as named
                    where named.value:use::string = '{{ use }}'
                ),
                0
            )
        )
    {%- elif part == 'given' -%}
        nullif(array_to_string(get_path({{ human_name }}, 'given'), ' '), '')
    {%- else -%}
        get_path({{ human_name }}, '{{ part }}')::string
    {%- endif -%}
{%- endmacro %}
