{# absolute_value_at_most: fails on rows whose column, ignoring its sign, exceeds max_value (nulls pass). #}
{#
    One failing row per offending record. arguments: max_value (a number; a var() works).
    Used on reconciliation_status.count_delta with var reconciliation_max_delta.
#}
{% test absolute_value_at_most(model, column_name, max_value) %}

select *
from {{ model }}
where abs({{ column_name }}) > {{ max_value }}

{% endtest %}
