{%- set period_start = measurement_period('start') -%}
{%- set period_end = measurement_period('end') -%}
{%- set threshold = var('pdc_adherence_threshold', 0.8) -%}

with

medication_dispenses as (

    select * from {{ ref('medication_dispenses') }}

),

medication_requests as (

    select * from {{ ref('medication_requests') }}

),

drug_classes as (

    select * from {{ ref('drug_classes') }}

),

population as (

    select * from {{ ref('quality_measure_population') }}

),

measurement_period as (

    select
        {{ period_start }} as period_start_date,
        {{ period_end }} as period_end_date

),

class_names as (

    select distinct
        drug_class_code,
        drug_class_display,
        pqa_measure_id
    from drug_classes

),

dispensing_sources as (

    -- source systems that deliver pharmacy fills at all
    select distinct source_system
    from medication_dispenses

),

dispensed_fills as (

    -- completed fills; a fill without days of supply takes its prescription's expected supply
    select
        medication_dispenses.patient_key,
        medication_dispenses.source_system,
        medication_dispenses.medication_code,
        medication_dispenses.handed_over_date as fill_date,
        coalesce(medication_dispenses.days_supply, medication_requests.expected_supply_days) as days_supply,
        'dispenses' as coverage_source
    from medication_dispenses
    left join medication_requests
        on medication_dispenses.medication_request_key = medication_requests.medication_request_key
    where
        medication_dispenses.is_completed
        and medication_dispenses.handed_over_date is not null

),

requested_fills as (

    -- a source system with no dispense at all: each order stands in for its fills (first fill
    -- plus refills, each lasting the expected supply), i.e. prescribed coverage
    select
        medication_requests.patient_key,
        medication_requests.source_system,
        medication_requests.medication_code,
        medication_requests.authored_date as fill_date,
        medication_requests.expected_supply_days
        * (1 + coalesce(medication_requests.number_of_repeats_allowed, 0)) as days_supply,
        'requests' as coverage_source
    from medication_requests
    left join dispensing_sources
        on medication_requests.source_system = dispensing_sources.source_system
    where
        dispensing_sources.source_system is null
        and medication_requests.medication_request_status in ('active', 'completed')
        and medication_requests.medication_request_intent in (
            'order', 'original-order', 'reflex-order', 'filler-order', 'instance-order'
        )

),

fills as (

    select * from dispensed_fills
    union all
    select * from requested_fills

),

period_fills as (

    -- fills of adherence-target drugs in the period, as day numbers from the period's start;
    -- two fills of one drug on one day count once, with the longer supply
    select
        fills.patient_key,
        fills.source_system,
        fills.coverage_source,
        drug_classes.drug_class_code,
        fills.medication_code,
        {{ dbt.datediff('measurement_period.period_start_date', 'fills.fill_date', 'day') }}
            as fill_day,
        max(cast(ceil(fills.days_supply) as integer)) as supply_days
    from fills
    cross join measurement_period
    inner join drug_classes
        on fills.medication_code = drug_classes.rxnorm_code
    where
        drug_classes.is_adherence_target
        and fills.fill_date between measurement_period.period_start_date and measurement_period.period_end_date
        and fills.days_supply > 0
    group by 1, 2, 3, 4, 5, 6

),

fills_accumulated as (

    -- running supply per drug, for shifting early refills (see fills_shifted)
    select
        *,
        sum(supply_days) over (
            partition by patient_key, drug_class_code, medication_code
            order by fill_day
            rows between unbounded preceding and current row
        ) as cumulative_supply_days
    from period_fills

),

fills_shifted as (

    -- PQA carry-over: a refill before the previous supply runs out starts when it runs out.
    -- With S(n) the running supply, the n-th fill's supply ends (exclusive) on day
    -- S(n) + max over k <= n of (fill_day(k) - S(k-1)); the covered spans then never overlap.
    select
        *,
        cumulative_supply_days + max(fill_day - cumulative_supply_days + supply_days) over (
            partition by patient_key, drug_class_code, medication_code
            order by fill_day
            rows between unbounded preceding and current row
        ) as covered_until_day
    from fills_accumulated

),

coverage_spans as (

    -- spans of different drugs of one class may still overlap: merge them (gaps and islands)
    select
        patient_key,
        drug_class_code,
        covered_until_day - supply_days as covered_from_day,
        covered_until_day,
        max(covered_until_day) over (
            partition by patient_key, drug_class_code
            order by covered_until_day - supply_days, covered_until_day
            rows between unbounded preceding and 1 preceding
        ) as previous_covered_until_day
    from fills_shifted

),

coverage_spans_numbered as (

    select
        *,
        sum(
            case
                when previous_covered_until_day is null or covered_from_day > previous_covered_until_day then 1
                else 0
            end
        ) over (
            partition by patient_key, drug_class_code
            order by covered_from_day, covered_until_day
            rows between unbounded preceding and current row
        ) as island_number
    from coverage_spans

),

coverage_islands as (

    select
        patient_key,
        drug_class_code,
        island_number,
        min(covered_from_day) as covered_from_day,
        max(covered_until_day) as covered_until_day
    from coverage_spans_numbered
    group by 1, 2, 3

),

class_fills as (

    select
        patient_key,
        source_system,
        drug_class_code,
        max(coverage_source) as coverage_source,
        count(*) as fill_count,
        count(distinct fill_day) as fill_date_count,
        min(fill_day) as index_day
    from period_fills
    group by 1, 2, 3

),

treatment_ends as (

    -- the treatment period runs from the first fill in the period (index) to the period's end,
    -- or to the day of death if earlier
    select
        class_fills.*,
        population.has_hospice_care,
        population.has_esrd_dialysis_or_kidney_transplant,
        measurement_period.period_start_date,
        case
            when population.deceased_date < measurement_period.period_end_date then population.deceased_date
            else measurement_period.period_end_date
        end as treatment_end_date
    from class_fills
    cross join measurement_period
    left join population
        on class_fills.patient_key = population.patient_key

),

treatment_periods as (

    select
        *,
        {{ dbt.datediff('period_start_date', 'treatment_end_date', 'day') }}
            as last_treatment_day
    from treatment_ends

),

covered_days as (

    select
        treatment_periods.patient_key,
        treatment_periods.drug_class_code,
        sum(
            case
                when
                    least(coverage_islands.covered_until_day, treatment_periods.last_treatment_day + 1)
                    > greatest(coverage_islands.covered_from_day, treatment_periods.index_day)
                    then
                        least(coverage_islands.covered_until_day, treatment_periods.last_treatment_day + 1)
                        - greatest(coverage_islands.covered_from_day, treatment_periods.index_day)
                else 0
            end
        ) as covered_day_count
    from treatment_periods
    inner join coverage_islands
        on
            treatment_periods.patient_key = coverage_islands.patient_key
            and treatment_periods.drug_class_code = coverage_islands.drug_class_code
    group by 1, 2

),

adherence as (

    select
        treatment_periods.*,
        class_names.drug_class_display,
        class_names.pqa_measure_id,
        treatment_periods.last_treatment_day - treatment_periods.index_day + 1 as treatment_day_count,
        covered_days.covered_day_count,
        case
            when coalesce(treatment_periods.has_hospice_care, false) then 'hospice'
            when coalesce(treatment_periods.has_esrd_dialysis_or_kidney_transplant, false) then 'esrd'
            when treatment_periods.fill_date_count < 2 then 'single_fill'
            when treatment_periods.last_treatment_day - treatment_periods.index_day + 1 < 91
                then 'short_treatment_period'
        end as exclusion_reason
    from treatment_periods
    inner join covered_days
        on
            treatment_periods.patient_key = covered_days.patient_key
            and treatment_periods.drug_class_code = covered_days.drug_class_code
    inner join class_names
        on treatment_periods.drug_class_code = class_names.drug_class_code

),

final as (

    select
        ---------- ids
        cast(patient_key as varchar) as patient_key,
        cast(source_system as varchar) as source_system,
        cast(drug_class_code as varchar) as drug_class_code,

        ---------- attributes
        cast(drug_class_display as varchar) as drug_class_display,
        cast(pqa_measure_id as varchar) as pqa_measure_id,
        cast(coverage_source as varchar) as coverage_source,

        ---------- period
        cast({{ period_start }} as date) as measurement_period_start,
        cast({{ period_end }} as date) as measurement_period_end,
        cast({{ dbt.dateadd('day', 'index_day', period_start) }} as date) as first_fill_date,
        cast({{ dbt.dateadd('day', 'last_treatment_day', period_start) }} as date) as treatment_period_end_date,

        ---------- measures
        cast(fill_count as bigint) as fill_count,
        cast(fill_date_count as bigint) as fill_date_count,
        cast(treatment_day_count as integer) as treatment_day_count,
        cast(covered_day_count as integer) as covered_day_count,
        cast(
            case when treatment_day_count > 0 then covered_day_count * 1.0 / treatment_day_count end as double
        ) as pdc,
        cast(
            treatment_day_count > 0 and covered_day_count * 1.0 / treatment_day_count >= {{ threshold }} as boolean
        ) as is_adherent,

        ---------- measure population (PQA)
        cast(exclusion_reason is null as boolean) as is_in_measure_denominator,
        cast(exclusion_reason as varchar) as exclusion_reason
    from adherence

)

select * from final
