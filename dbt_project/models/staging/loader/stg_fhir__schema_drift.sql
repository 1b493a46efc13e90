{#- raw_fhir.schema_drift is written only by runs that found drift (loaders/drift/); a warehouse
    whose loads never drifted has no such table, and this model is then empty. -#}
{%- set schema_drift_columns = [
    ['source_system', 'varchar'],
    ['resource_type', 'varchar'],
    ['json_path', 'varchar'],
    ['observed_kind', 'varchar'],
    ['expected_kind', 'varchar'],
    ['first_seen_landing_file', 'varchar'],
    ['first_seen_at', 'timestamp with time zone'],
    ['run_id', 'varchar'],
    ['count', 'bigint'],
    ['policy', 'varchar'],
] -%}

with

source as (

    {{ loader_optional_source(source('fhir', 'schema_drift'), schema_drift_columns) }}

),

final as (

    select

        ---------- ids
        run_id,
        source_system,
        resource_type,
        json_path,
        observed_kind,

        ---------- attributes
        expected_kind,
        expected_kind = 'unknown' as is_unknown_element,
        policy as drift_policy,
        first_seen_landing_file,

        ---------- measures
        count as resource_count,

        ---------- timestamps (UTC)
        {{ to_utc_timestamp('first_seen_at') }} as first_seen_at

    from source

)

select * from final
