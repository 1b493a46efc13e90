{# The natural key of a raw FHIR row, unique across sources: source_system || '|' || id. #}
{% macro fhir_resource_key(source_system_column, id_column) -%}
    {{ source_system_column }} || '|' || {{ id_column }}
{%- endmacro %}
