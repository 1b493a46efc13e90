{#
    not_in_future: a UTC timestamp column is not later than the build time plus grace_hours.
    One row per offending record; nulls pass. "Now" is as_of_timestamp(): var as_of if set, else the build time.
#}
{% test not_in_future(model, column_name, grace_hours=0) %}

with

final as (

    select {{ column_name }} as tested_at
    from {{ model }}
    where {{ column_name }} > {{ dbt.dateadd('hour', grace_hours, fhir_elt.as_of_timestamp()) }}

)

select * from final

{% endtest %}
