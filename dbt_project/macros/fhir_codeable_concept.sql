{# A CodeableConcept reduced to the coding of an expected system: part = code | display | system | text | codings. #}
{#
    fhir_codeable_concept('resource', 'code', var('loinc_system'), 'code') reads the code of the
    first coding whose system is the LOINC URI, or null when the concept has no LOINC coding.
    system=none takes the first coding whatever its system. part='text' reads CodeableConcept.text;
    part='codings' keeps every coding (JSON / VARIANT array), so codings of other systems are not lost.
#}
{% macro fhir_codeable_concept(column, path, system=none, part='code') -%}
    {%- if part not in ('code', 'display', 'system', 'text', 'codings') -%}
        {{ exceptions.raise_compiler_error("fhir_codeable_concept: part must be code, display, system, text or codings, got " ~ part) }}
    {%- endif -%}
    {{ return(adapter.dispatch('fhir_codeable_concept', 'fhir_elt')(column, path, system, part)) }}
{%- endmacro %}

{% macro default__fhir_codeable_concept(column, path, system, part) -%}
    {%- if part == 'text' -%}
        {{ fhir_elt.json_string(column, path ~ '.text') }}
    {%- elif part == 'codings' -%}
        {{ fhir_elt.json_element(column, path ~ '.coding') }}
    {%- elif system is none -%}
        {{ fhir_elt.json_string(column, path ~ '.coding[0].' ~ part) }}
    {%- else -%}
        {{ fhir_elt.json_string(fhir_elt.json_array_find(column, path ~ '.coding', 'system', system), part) }}
    {%- endif -%}
{%- endmacro %}

{% macro duckdb__fhir_codeable_concept(column, path, system, part) -%}
    {{ fhir_elt.default__fhir_codeable_concept(column, path, system, part) }}
{%- endmacro %}

{% macro snowflake__fhir_codeable_concept(column, path, system, part) -%}
    {{ fhir_elt.default__fhir_codeable_concept(column, path, system, part) }}
{%- endmacro %}
