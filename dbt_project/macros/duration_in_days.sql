{# A UCUM duration (value + unit code: d, wk, mo, a, h, min) in days; null for other units. #}
{#
    Used for supply durations (MedicationRequest.dispenseRequest.expectedSupplyDuration,
    MedicationDispense.daysSupply). A month is 30 days and a year 365 days, the convention of
    pharmacy claims; "days" (the unit, not the UCUM code) is accepted because feeds send it.
#}
{% macro duration_in_days(value, unit_code) -%}
    case {{ unit_code }}
        when 'd' then {{ value }}
        when 'days' then {{ value }}
        when 'wk' then {{ value }} * 7
        when 'mo' then {{ value }} * 30
        when 'a' then {{ value }} * 365
        when 'h' then {{ value }} / 24.0
        when 'min' then {{ value }} / 1440.0
    end
{%- endmacro %}
