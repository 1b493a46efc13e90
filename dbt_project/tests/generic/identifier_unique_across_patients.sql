{#
    identifier_unique_across_patients: an identifier value (the tested column, e.g. the MRN) is
    held by at most one patient within each partition (by default per source system; different
    EHRs may reuse numbers). One row per identifier value held by two or more distinct patients,
    with how many; the same patient listed twice is not a duplicate. Nulls pass.
    arguments: patient_column (default patient_key), partition_columns (default [source_system]).
    checked_rows (every row): distinct identifier values, for rate thresholds (macro rate_above).
    Failing rows show identifier values: keep store_failures off outside the restricted schema.
#}
{% test identifier_unique_across_patients(
    model,
    column_name,
    patient_column='patient_key',
    partition_columns=['source_system']
) %}

{%- set partition_list = partition_columns | join(', ') %}

with

identifiers as (

    select distinct
        {% for column in partition_columns -%}
            {{ column }},
        {% endfor -%}
        {{ column_name }} as identifier_value,
        {{ patient_column }} as patient_value
    from {{ model }}
    where {{ column_name }} is not null

),

holders as (

    select
        {% for column in partition_columns -%}
            {{ column }},
        {% endfor -%}
        identifier_value,
        count(distinct patient_value) as patient_count
    from identifiers
    group by {{ partition_list }}{% if partition_list %}, {% endif %}identifier_value

),

checked as (

    select count(*) as checked_rows
    from holders

),

final as (

    select
        holders.*,
        checked.checked_rows
    from holders
    cross join checked
    where holders.patient_count > 1

)

select * from final

{% endtest %}
