{#- canonical model -> (FHIR resource type, raw table: the key of var raw_freshness_hours) -#}
{%- set resource_models = [
    ['patients', 'Patient', 'patient'],
    ['encounters', 'Encounter', 'encounter'],
    ['conditions', 'Condition', 'condition'],
    ['observations', 'Observation', 'observation'],
    ['medication_requests', 'MedicationRequest', 'medication_request'],
    ['medication_dispenses', 'MedicationDispense', 'medication_dispense'],
    ['procedures', 'Procedure', 'procedure'],
    ['immunizations', 'Immunization', 'immunization'],
    ['allergies', 'AllergyIntolerance', 'allergy_intolerance'],
    ['practitioners', 'Practitioner', 'practitioner'],
    ['organizations', 'Organization', 'organization'],
    ['locations', 'Location', 'location'],
] -%}
{%- set hours = var('raw_freshness_hours', {}) -%}
{%- set default_hours = hours.get('default', {}) -%}

with

landing_manifest as (

    select * from {{ ref('stg_fhir__landing_manifest') }}

),

quarantine as (

    select * from {{ ref('stg_fhir__quarantine') }}

),

request_log as (

    select * from {{ ref('stg_fhir__request_log') }}

),

now_utc as (

    select {{ as_of_timestamp() }} as as_of_at

),

source_updates as (

    -- newest meta.lastUpdated of the current records of each type (what dbt source freshness reads)
    {% for model_name, resource_type, table_name in resource_models -%}
        select
            source_system,
            '{{ resource_type }}' as resource_type,
            max(last_updated_at) as last_source_update_at
        from {{ ref(model_name) }}
        group by 1
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

freshness_thresholds as (

    -- var raw_freshness_hours: the same thresholds as the sources' freshness checks
    {% for model_name, resource_type, table_name in resource_models -%}
        {%- set table_hours = hours.get(table_name, {}) -%}
        select
            '{{ resource_type }}' as resource_type,
            {{ table_hours.get('warn', default_hours.get('warn', 24)) }} as warn_after_hours,
            {{ table_hours.get('error', default_hours.get('error', 72)) }} as error_after_hours
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

landed as (

    select
        source_system,
        resource_type,
        max(created_at) as last_landed_at,
        count(*) as landing_file_count,
        sum(resource_count) as landed_resource_count
    from landing_manifest
    group by 1, 2

),

quarantined as (

    select
        source_system,
        coalesce(resource_type, 'unknown') as resource_type,
        count(*) as quarantined_count
    from quarantine
    group by 1, 2

),

requested as (

    select
        source_system,
        coalesce(resource_type, 'unknown') as resource_type,
        count(*) as request_count,
        sum(case when attempt > 1 then 1 else 0 end) as retry_count,
        sum(case when http_status = 429 then 1 else 0 end) as rate_limited_count
    from request_log
    group by 1, 2

),

resource_types as (

    select
        source_system,
        resource_type
    from source_updates
    union
    select
        source_system,
        resource_type
    from landed
    union
    select
        source_system,
        resource_type
    from quarantined
    union
    select
        source_system,
        resource_type
    from requested

),

resource_types_joined as (

    select
        resource_types.source_system,
        resource_types.resource_type,
        landed.last_landed_at,
        landed.landing_file_count,
        landed.landed_resource_count,
        source_updates.last_source_update_at,
        {{ dbt.datediff('landed.last_landed_at', 'now_utc.as_of_at', 'minute') }}
        / 60.0 as hours_since_last_landing,
        {{ dbt.datediff('source_updates.last_source_update_at', 'now_utc.as_of_at', 'minute') }}
        / 60.0 as freshness_lag_hours,
        freshness_thresholds.warn_after_hours,
        freshness_thresholds.error_after_hours,
        quarantined.quarantined_count,
        requested.request_count,
        requested.retry_count,
        requested.rate_limited_count
    from resource_types
    cross join now_utc
    left join landed
        on
            resource_types.source_system = landed.source_system
            and resource_types.resource_type = landed.resource_type
    left join source_updates
        on
            resource_types.source_system = source_updates.source_system
            and resource_types.resource_type = source_updates.resource_type
    left join freshness_thresholds
        on resource_types.resource_type = freshness_thresholds.resource_type
    left join quarantined
        on
            resource_types.source_system = quarantined.source_system
            and resource_types.resource_type = quarantined.resource_type
    left join requested
        on
            resource_types.source_system = requested.source_system
            and resource_types.resource_type = requested.resource_type

),

final as (

    select
        ---------- grain
        cast(source_system as varchar) as source_system,
        cast(resource_type as varchar) as resource_type,

        ---------- landing (when the pipeline last delivered this type)
        cast(last_landed_at as timestamp) as last_landed_at,
        cast(hours_since_last_landing as double) as hours_since_last_landing,
        cast(coalesce(landing_file_count, 0) as bigint) as landing_file_count,
        cast(coalesce(landed_resource_count, 0) as bigint) as landed_resource_count,

        ---------- freshness of the data (newest meta.lastUpdated), as dbt source freshness
        cast(last_source_update_at as timestamp) as last_source_update_at,
        cast(freshness_lag_hours as double) as freshness_lag_hours,
        cast(warn_after_hours as double) as warn_after_hours,
        cast(error_after_hours as double) as error_after_hours,
        cast(
            case
                when warn_after_hours is null then 'not_checked'
                when freshness_lag_hours is null then 'no_data'
                when freshness_lag_hours > error_after_hours then 'error'
                when freshness_lag_hours > warn_after_hours then 'warn'
                else 'pass'
            end as varchar
        ) as freshness_status,

        ---------- rejects and HTTP trouble (all runs)
        cast(coalesce(quarantined_count, 0) as bigint) as quarantined_count,
        cast(coalesce(request_count, 0) as bigint) as request_count,
        cast(coalesce(retry_count, 0) as bigint) as retry_count,
        cast(coalesce(rate_limited_count, 0) as bigint) as rate_limited_count
    from resource_types_joined

)

select * from final
