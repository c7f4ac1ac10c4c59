{#-
    True where a signal rule's evidence family was available at a checkpoint.

    family: the rule's evidence_family column (signal_rules); families: the alias of
    int_attribution__evidence_families joined on the checkpoint. Billing is always there
    (every checkpoint is a billing customer); an unknown family is never available.
-#}
{% macro evidence_family_available(family, families) %}
    case {{ family }}
        when 'billing' then true
        when 'crm_account' then {{ families }}.is_crm_linked
        when 'crm_activity' then {{ families }}.has_crm_activity
        when 'support' then {{ families }}.has_support
        when 'usage' then {{ families }}.has_usage
        when 'survey' then {{ families }}.has_survey
        else false
    end
{% endmacro %}
