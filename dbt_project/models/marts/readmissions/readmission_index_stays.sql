{%- set window_days = var('readmission_window_days', 30) | int -%}
{%- set excluded_dispositions = var('readmission_excluded_dispositions', []) -%}
{%- set reasons = {
    'exp': 'in_hospital_death',
    'other-hcf': 'transfer',
    'aadvice': 'against_medical_advice',
    'hosp': 'hospice',
} -%}

with

encounters as (

    select * from {{ ref('encounters') }}

),

patients as (

    select * from {{ ref('patients') }}

),

excluded_dispositions as (

    -- var readmission_excluded_dispositions, with the exclusion reason each one gives
    {% for code in excluded_dispositions -%}
        select
            '{{ code }}' as disposition_code,
            '{{ reasons.get(code, "excluded_disposition") }}' as exclusion_reason
        {% if not loop.last %}union all{% endif %}
    {% else -%}
        select
            cast(null as varchar) as disposition_code,
            cast(null as varchar) as exclusion_reason
        where 1 = 0
    {% endfor %}

),

inpatient_admissions as (

    -- every inpatient stay that has begun by "now": the candidates for a readmission
    select
        encounter_key,
        patient_key,
        source_system,
        organization_id,
        location_id,
        discharge_disposition_code,
        has_valid_period,
        started_at,
        start_date,
        ended_at,
        end_date,
        inpatient_days
    from encounters
    where
        is_inpatient
        and started_at is not null
        and started_at <= {{ as_of_timestamp() }}
        and coalesce(encounter_status, 'unknown') not in ('cancelled', 'entered-in-error')

),

discharges as (

    -- stays with a trustworthy discharge: closed by "now", period not ending before it starts
    select *
    from inpatient_admissions
    where
        has_valid_period
        and ended_at is not null
        and ended_at <= {{ as_of_timestamp() }}

),

later_admissions as (

    -- inpatient admissions of the same patient starting at or after each discharge, ranked
    select
        discharges.encounter_key,
        admissions.encounter_key as next_encounter_key,
        admissions.started_at as next_started_at,
        admissions.start_date as next_start_date,
        row_number() over (
            partition by discharges.encounter_key
            order by admissions.started_at, admissions.encounter_key
        ) as admission_rank
    from discharges
    inner join inpatient_admissions as admissions
        on
            discharges.patient_key = admissions.patient_key
            and discharges.ended_at <= admissions.started_at
            and discharges.encounter_key != admissions.encounter_key

),

next_admissions as (

    select *
    from later_admissions
    where admission_rank = 1

),

discharges_with_next_admission as (

    select
        discharges.*,
        next_admissions.next_encounter_key,
        next_admissions.next_started_at,
        {{ dbt.datediff('discharges.end_date', 'next_admissions.next_start_date', 'day') }}
            as days_to_next_admission,
        patients.deceased_date,
        excluded_dispositions.exclusion_reason as disposition_exclusion_reason
    from discharges
    left join next_admissions
        on discharges.encounter_key = next_admissions.encounter_key
    left join patients
        on discharges.patient_key = patients.patient_key
    left join excluded_dispositions
        on discharges.discharge_disposition_code = excluded_dispositions.disposition_code

),

discharges_classified as (

    select
        *,
        -- the first matching reason wins; null = an index stay
        case
            when deceased_date <= end_date then 'in_hospital_death'
            when disposition_exclusion_reason is not null then disposition_exclusion_reason
            when days_to_next_admission = 0 then 'same_day_readmission'
            when {{ dbt.dateadd('day', window_days, 'ended_at') }} > {{ as_of_timestamp() }}
                then 'incomplete_follow_up'
        end as exclusion_reason
    from discharges_with_next_admission

),

final as (

    select
        ---------- ids
        cast(encounter_key as varchar) as encounter_key,
        cast(patient_key as varchar) as patient_key,
        cast(source_system as varchar) as source_system,
        cast(coalesce(organization_id, 'unknown') as varchar) as organization_id,
        cast(coalesce(location_id, 'unknown') as varchar) as location_id,

        ---------- codes
        cast(discharge_disposition_code as varchar) as discharge_disposition_code,

        ---------- timestamps and dates (UTC)
        cast(started_at as timestamp) as admitted_at,
        cast(ended_at as timestamp) as discharged_at,
        cast(end_date as date) as discharge_date,
        cast({{ dbt.date_trunc('month', 'end_date') }} as date) as discharge_month,

        ---------- index stay
        cast(exclusion_reason is null as boolean) as is_index_stay,
        cast(exclusion_reason as varchar) as exclusion_reason,

        ---------- outcome
        cast(
            exclusion_reason is null
            and coalesce(days_to_next_admission between 1 and {{ window_days }}, false)
            as boolean
        ) as is_readmitted,
        cast(next_encounter_key as varchar) as next_admission_encounter_key,
        cast(next_started_at as timestamp) as next_admitted_at,
        cast(days_to_next_admission as integer) as days_to_next_admission,

        ---------- measures
        cast(inpatient_days as integer) as length_of_stay_days
    from discharges_classified

)

select * from final
