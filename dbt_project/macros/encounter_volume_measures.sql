{# The aggregate measures of the encounter volume marts, one definition for every time grain. #}
{#
    Used by encounter_volume_daily / _weekly / _monthly over canonical encounters, grouped by
    their period, source system, class, organization and location. patient_count is distinct
    within the group, so it is computed per grain, never summed from a finer one.
#}
{% macro encounter_volume_measures() -%}
    count(*) as encounter_count,
    count(distinct patient_key) as patient_count,
    sum(case when is_inpatient then 1 else 0 end) as inpatient_encounter_count,
    sum(case when is_emergency then 1 else 0 end) as emergency_encounter_count,
    sum(coalesce(inpatient_days, 0)) as inpatient_days,
    avg(length_of_stay_hours) as avg_length_of_stay_hours,
    sum(case when has_valid_period then 0 else 1 end) as invalid_period_count
{%- endmacro %}
