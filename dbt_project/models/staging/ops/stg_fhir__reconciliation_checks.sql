{#- raw_fhir.reconciliation_checks is written by `fhir-elt reconcile` (loaders/reconcile/); a
    deployment that never reconciles has no such table, and this model is then empty. -#}
{%- set columns = [
    ['run_id', 'varchar'],
    ['source_system', 'varchar'],
    ['resource_type', 'varchar'],
    ['window_start', 'timestamp with time zone'],
    ['window_end', 'timestamp with time zone'],
    ['source_count', 'bigint'],
    ['warehouse_count', 'bigint'],
    ['delta', 'bigint'],
    ['initial_delta', 'bigint'],
    ['ids_compared', 'boolean'],
    ['repaired', 'boolean'],
    ['resources_fetched', 'bigint'],
    ['marked_deleted', 'bigint'],
    ['status', 'varchar'],
    ['checked_at', 'timestamp with time zone'],
] -%}

with

source as (

    {{ loader_optional_source(source('fhir', 'reconciliation_checks'), columns) }}

),

renamed as (

    select
        -- ids
        run_id,
        source_system,
        resource_type,

        -- outcome
        status as check_status,
        coalesce(ids_compared, false) as is_ids_compared,
        coalesce(repaired, false) as is_repaired,

        -- dates
        {{ fhir_elt.to_utc_timestamp('window_start') }} as window_start_at,
        {{ fhir_elt.to_utc_timestamp('window_end') }} as window_end_at,
        {{ fhir_elt.to_utc_timestamp('checked_at') }} as checked_at,

        -- measures
        source_count,
        warehouse_count,
        delta as count_delta,
        initial_delta as initial_count_delta,
        resources_fetched,
        marked_deleted

    from source

)

select * from renamed
