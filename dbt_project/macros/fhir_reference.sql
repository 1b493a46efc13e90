{# A FHIR Reference parsed from "Type/id": part = id | type | reference (the raw string). #}
{#
    Accepts relative ("Patient/123"), absolute ("https://ehr/fhir/Patient/123"), versioned
    ("Patient/123/_history/2") and bundle ("urn:uuid:...", id only; type from Reference.type)
    references. Contained ("#x") and unparseable references give null id and type.
    path='' reads a column that is itself a Reference (an element of a flattened array).
#}
{% macro fhir_reference(column, path, part='id') -%}
    {%- if part not in ('id', 'type', 'reference') -%}
        {{ exceptions.raise_compiler_error("fhir_reference: part must be id, type or reference, got " ~ part) }}
    {%- endif -%}
    {{ return(adapter.dispatch('fhir_reference', 'fhir_elt')(column, path, part)) }}
{%- endmacro %}

{%- macro fhir_reference_pattern() -%}
    ([A-Za-z]+)/([A-Za-z0-9.-]+)(/_history/[A-Za-z0-9.-]+)?$
{%- endmacro -%}

{% macro default__fhir_reference(column, path, part) -%}
    {%- set prefix = (path ~ '.') if path else '' -%}
    {%- set reference = fhir_elt.json_string(column, prefix ~ 'reference') -%}
    {%- if part == 'reference' -%}
        {{ reference }}
    {%- elif part == 'id' -%}
        case
            when {{ reference }} like 'urn:uuid:%' then substr({{ reference }}, 10)
            else {{ fhir_elt.regexp_group(reference, fhir_elt.fhir_reference_pattern(), 2) }}
        end
    {%- else -%}
        coalesce(
            {{ fhir_elt.regexp_group(reference, fhir_elt.fhir_reference_pattern(), 1) }},
            {{ fhir_elt.json_string(column, prefix ~ 'type') }}
        )
    {%- endif -%}
{%- endmacro %}
