{#
    not_in_future: a UTC timestamp column is not later than the build time plus grace_hours.
    One row per offending record; nulls pass. "Now" is as_of_timestamp(): var as_of if set, else the build time.
    checked_rows (every row): records with a value, for rate thresholds (macro rate_above).
#}
{% test not_in_future(model, column_name, grace_hours=0) %}

with

records as (

    select {{ column_name }} as tested_at
    from {{ model }}
    where {{ column_name }} is not null

),

checked as (

    select count(*) as checked_rows
    from records

),

final as (

    select
        records.tested_at,
        checked.checked_rows
    from records
    cross join checked
    where records.tested_at > {{ dbt.dateadd('hour', grace_hours, fhir_elt.as_of_timestamp()) }}

)

select * from final

{% endtest %}
