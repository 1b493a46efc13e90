{# Pre-hook of the incremental canonical models: delete the rows of resources changed or gone in staging. #}
{#
    An incremental canonical model keeps a row only while staging still holds its resource
    from a load the model already processed; every other row is deleted here: resources that
    newer loads changed (staging replaced them) and resources staging no longer holds (deleted
    at the source). The model then inserts the rows of the staging rows loaded since its last
    build (fhir_loaded_since_last_build, the same watermark and lookback as staging), so a
    changed resource's rows are rebuilt whole: a panel that lost a component or its own value
    loses that row. The insert is delete+insert on the model's row key, so reading rows again
    (a lookback, or a watermark lowered by this delete) never duplicates them.

        pre_hook="{{ canonical_delete_changed_rows(ref('stg_fhir__encounters'), 'encounter_source_key', 'encounter_key') }}"

    resource_key: the SQL expression, over the model's own columns, of the keyed hash of the
    row's resource source key (a column, or e.g. a coalesce for rows of one resource's parts).
    Gone resources can only be found by comparing with all of staging: this hashes every
    staging key (cheap next to rebuilding the model). Renders nothing on a full build. On
    DuckDB it runs in the model's transaction; on Snowflake it commits on its own, and if the
    insert then fails the next build reads those resources again (the model's greatest load
    id can only have gone down below theirs).
#}
{% macro canonical_delete_changed_rows(staging_relation, source_key_column, resource_key) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where {{ resource_key }} not in (
            select {{ fhir_elt.keyed_hash('processed.' ~ source_key_column) }}
            from {{ staging_relation }} as processed
            where not ({{ fhir_elt.fhir_loaded_since_last_build('processed._dlt_load_id') }})
        )
    {%- endif -%}
{%- endmacro %}
