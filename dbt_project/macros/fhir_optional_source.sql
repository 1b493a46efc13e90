{# Select from a raw FHIR table that may not exist yet: the table, or no rows with the raw contract's columns. #}
{#
    For resource types the loader does not create up front (CORE_RESOURCE_TYPES in
    loaders/fhir/resource_types.py), e.g. DiagnosticReport and Coverage: until a feed delivers
    one, their staging views read zero rows instead of failing the build. Pass the source()
    relation, so the dependency stays visible in the model:

        {{ fhir_optional_source(source('fhir', 'coverage')) }}

    The table is looked up only when dbt executes with introspection; unit tests (the relation
    is a fixture CTE) and `dbt compile --no-introspect` read the source as is. Core resource
    types use a plain `select * from source(...)`, so a missing core table fails loudly.
#}
{% macro fhir_optional_source(relation) -%}
    {%- set relation_exists = true -%}
    {%- if execute and flags.INTROSPECT and not relation.is_cte -%}
        {%- set relation_exists = load_relation(relation) is not none -%}
    {%- endif -%}
    {%- if relation_exists -%}
        select * from {{ relation }}
    {%- else -%}
        {#- the raw table contract (DESIGN.md, loaders/warehouse/raw_tables.py) -#}
        select
            cast(null as varchar) as source_system,
            cast(null as varchar) as resource_type,
            cast(null as varchar) as id,
            cast(null as varchar) as version_id,
            cast(null as timestamp with time zone) as last_updated,
            {{ fhir_elt.json_literal('{}') }} as resource,
            cast(null as varchar) as content_hash,
            cast(null as varchar) as version_sort_key,
            cast(null as timestamp with time zone) as fetched_at,
            cast(null as varchar) as request_id,
            cast(null as varchar) as landing_file,
            cast(null as boolean) as is_deleted,
            cast(null as varchar) as _dlt_load_id
        where 1 = 0
    {%- endif -%}
{%- endmacro %}
