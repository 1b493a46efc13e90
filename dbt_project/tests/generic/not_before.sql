{#
    not_before: the column (e.g. ended_at) is not earlier than another column of the same row
    (e.g. started_at). One row per offending record; rows with either value null pass.
    arguments: start_column.
#}
{% test not_before(model, column_name, start_column) %}

with

final as (

    select
        {{ start_column }} as start_value,
        {{ column_name }} as tested_value
    from {{ model }}
    where {{ column_name }} < {{ start_column }}

)

select * from final

{% endtest %}
