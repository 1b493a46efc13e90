{# Pre-hook of the incremental staging models: delete the rows of resources that newer loads changed. #}
{#
    The model then inserts the current version of each of those resources (strategy
    delete+insert on unique_key, the resource's source key). Deleting first is what removes
    resources that now yield no row at all: a resource deleted at the source (is_deleted) and,
    in models with one row per array element (observation components, report results), a new
    version whose array is empty or shorter than before. Renders nothing on a full build.

        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'observation'), 'observation_source_key') }}"

    On DuckDB the hook runs in the model's transaction. On Snowflake it commits on its own; if
    the insert then fails, the next build reads those loads again (the greatest load id left in
    the model can only have gone down), so nothing is lost.
#}
{% macro fhir_delete_changed_resources(raw_relation, resource_key_column) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where {{ resource_key_column }} in (
            select {{ fhir_elt.fhir_resource_key('raw_rows.source_system', 'raw_rows.id') }}
            from ({{ fhir_elt.fhir_optional_source(raw_relation) }}) as raw_rows
            where {{ fhir_elt.fhir_loaded_since_last_build('raw_rows._dlt_load_id') }}
        )
    {%- endif -%}
{%- endmacro %}
