with

encounters as (

    select * from {{ ref('stg_fhir__encounters') }}

),

conditions as (

    select * from {{ ref('stg_fhir__conditions') }}

),

observations as (

    select * from {{ ref('stg_fhir__observations') }}

),

procedures as (

    select * from {{ ref('stg_fhir__procedures') }}

),

medication_requests as (

    select * from {{ ref('stg_fhir__medication_requests') }}

),

reconciliation_checks as (

    select * from {{ ref('stg_fhir__reconciliation_checks') }}

),

reconciliation_status as (

    -- the standing checks, as in reconciliation_status (not read from it: its threshold test
    -- may fail the build, and dbt would then skip this model)
    select
        *,
        check_status in ('delta', 'over_budget') as is_failing
    from ({{ reconciliation_standing_checks('reconciliation_checks') }}) as standing_checks

),

deliveries as (

    -- the latest moment each linked type's feed delivered a (new or changed) resource
    select
        source_system,
        'Condition' as resource_type,
        max(fetched_at) as delivered_at
    from conditions
    group by 1
    union all
    select
        source_system,
        'Observation' as resource_type,
        max(fetched_at) as delivered_at
    from observations
    group by 1
    union all
    select
        source_system,
        'Procedure' as resource_type,
        max(fetched_at) as delivered_at
    from procedures
    group by 1
    union all
    select
        source_system,
        'MedicationRequest' as resource_type,
        max(fetched_at) as delivered_at
    from medication_requests
    group by 1

),

reconciled as (

    -- standing reconciliation checks: clean ones prove completeness up to their window's end;
    -- a failing one means a gap from its window's start on
    select
        source_system,
        resource_type,
        max(case when not is_failing and check_status != 'unchecked' then window_end_at end)
            as reconciled_through_at,
        min(
            case
                when is_failing
                    then coalesce(window_start_at, cast('1900-01-01 00:00:00' as timestamp))
            end
        ) as first_gap_after_at
    from reconciliation_status
    where resource_type in ('Condition', 'Observation', 'Procedure', 'MedicationRequest')
    group by 1, 2

),

linked_horizons as (

    select
        coalesce(deliveries.source_system, reconciled.source_system) as source_system,
        coalesce(deliveries.resource_type, reconciled.resource_type) as resource_type,
        coalesce(
            reconciled.first_gap_after_at,
            greatest(
                coalesce(deliveries.delivered_at, reconciled.reconciled_through_at),
                coalesce(reconciled.reconciled_through_at, deliveries.delivered_at)
            )
        ) as loaded_through_at
    from deliveries
    full outer join reconciled
        on
            deliveries.source_system = reconciled.source_system
            and deliveries.resource_type = reconciled.resource_type

),

horizons_per_source as (

    select
        source_system,
        max(case when resource_type = 'Condition' then loaded_through_at end)
            as conditions_loaded_through_at,
        max(case when resource_type = 'Observation' then loaded_through_at end)
            as observations_loaded_through_at,
        max(case when resource_type = 'Procedure' then loaded_through_at end)
            as procedures_loaded_through_at,
        max(case when resource_type = 'MedicationRequest' then loaded_through_at end)
            as medication_requests_loaded_through_at
    from linked_horizons
    group by 1

),

encounters_joined_to_horizons as (

    select
        encounters.encounter_source_key,
        encounters.source_system,
        encounters.patient_id,
        coalesce(encounters.last_updated_at, encounters.fetched_at) as encounter_changed_at,
        horizons_per_source.conditions_loaded_through_at,
        horizons_per_source.observations_loaded_through_at,
        horizons_per_source.procedures_loaded_through_at,
        horizons_per_source.medication_requests_loaded_through_at
    from encounters
    left join horizons_per_source
        on encounters.source_system = horizons_per_source.source_system

),

gaps as (

    select
        *,
        coalesce(conditions_loaded_through_at < encounter_changed_at, false)
            as is_missing_conditions,
        coalesce(observations_loaded_through_at < encounter_changed_at, false)
            as is_missing_observations,
        coalesce(procedures_loaded_through_at < encounter_changed_at, false)
            as is_missing_procedures,
        coalesce(medication_requests_loaded_through_at < encounter_changed_at, false)
            as is_missing_medication_requests
    from encounters_joined_to_horizons

),

final as (

    select

        ---------- ids (keyed hashes, as in canonical encounters)
        {{ keyed_hash('encounter_source_key') }} as encounter_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'patient_id')) }} as patient_key,
        source_system,

        ---------- completeness
        (
            not is_missing_conditions
            and not is_missing_observations
            and not is_missing_procedures
            and not is_missing_medication_requests
        ) as is_complete,
        nullif(
            rtrim(
                case when is_missing_conditions then 'Condition,' else '' end
                || case when is_missing_observations then 'Observation,' else '' end
                || case when is_missing_procedures then 'Procedure,' else '' end
                || case when is_missing_medication_requests then 'MedicationRequest,' else '' end,
                ','
            ),
            ''
        ) as incomplete_linked_types,

        ---------- timestamps (UTC)
        encounter_changed_at,
        conditions_loaded_through_at,
        observations_loaded_through_at,
        procedures_loaded_through_at,
        medication_requests_loaded_through_at

    from gaps

)

select * from final
