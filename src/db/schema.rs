// The tables as diesel sees them; both migration sets produce exactly these
// (tests/api/migrations.rs compares them).

diesel::table! {
    agencies (id) {
        id -> Text,
        name -> Text,
        contact_email -> Nullable<Text>,
        active -> Bool,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        session_epoch -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        role -> Text,
        agency_id -> Nullable<Text>,
        is_admin -> Bool,
        locale -> Text,
        active -> Bool,
        password_hash -> Text,
        id_document_type -> Nullable<Text>,
        id_document_number -> Nullable<Text>,
        account_number -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        capacity -> Nullable<Integer>,
        session_epoch -> BigInt,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        family_id -> Text,
        user_id -> Text,
        token_hash -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    services (id) {
        id -> Text,
        agency_id -> Text,
        title -> Text,
        description -> Text,
        price_minor -> BigInt,
        currency -> Text,
        active -> Bool,
        default_priority -> Text,
        required_data_template -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        sla_policy_id -> Nullable<Text>,
    }
}

diesel::table! {
    case_counters (year) {
        year -> Integer,
        last -> BigInt,
    }
}

diesel::table! {
    cases (id) {
        id -> Text,
        number -> Text,
        title -> Text,
        description -> Text,
        service_id -> Text,
        agency_id -> Text,
        client_id -> Text,
        status -> Text,
        priority -> Text,
        payment_method -> Text,
        payment_state -> Text,
        assignee_id -> Nullable<Text>,
        disputed -> Bool,
        resolution_type -> Nullable<Text>,
        resolution -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        closed_at -> Nullable<Timestamp>,
        delegated_by -> Nullable<Text>,
        sla_state -> Nullable<Text>,
        sla_due_at -> Nullable<Timestamp>,
        sla_next_at -> Nullable<Timestamp>,
        tags -> Text,
        sla_policy_id -> Nullable<Text>,
    }
}

diesel::table! {
    client_open_cases (client_id, agency_id) {
        client_id -> Text,
        agency_id -> Text,
        open_cases -> BigInt,
    }
}

diesel::table! {
    case_agents (case_id, user_id) {
        case_id -> Text,
        user_id -> Text,
        assigned_at -> Timestamp,
    }
}

diesel::table! {
    case_fields (case_id, key) {
        case_id -> Text,
        key -> Text,
        position -> Integer,
        label -> Text,
        field_type -> Text,
        required -> Bool,
        options -> Nullable<Text>,
        help -> Nullable<Text>,
        value -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        seq -> BigInt,
        entity -> Text,
        entity_id -> Text,
        case_id -> Nullable<Text>,
        action -> Text,
        field -> Nullable<Text>,
        old_value -> Nullable<Text>,
        new_value -> Nullable<Text>,
        actor_id -> Nullable<Text>,
        actor_role -> Nullable<Text>,
        request_id -> Nullable<Text>,
        created_at -> Timestamp,
        prev_hash -> Text,
        hash -> Text,
        agency_id -> Nullable<Text>,
        hash_version -> Integer,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    idempotency_keys (user_id, key) {
        user_id -> Text,
        key -> Text,
        fingerprint -> Text,
        status_code -> Integer,
        location -> Nullable<Text>,
        etag -> Nullable<Text>,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    loose_blobs (storage_key) {
        storage_key -> Text,
        due_at -> Timestamp,
    }
}

diesel::table! {
    attachments (id) {
        id -> Text,
        case_id -> Text,
        uploader_id -> Text,
        file_name -> Text,
        content_type -> Text,
        size_bytes -> BigInt,
        sha256 -> Text,
        storage_key -> Text,
        created_at -> Timestamp,
        internal -> Bool,
    }
}

diesel::table! {
    storyline_events (id) {
        id -> Text,
        case_id -> Text,
        occurred_at -> Timestamp,
        kind -> Text,
        title -> Text,
        body -> Nullable<Text>,
        latitude -> Nullable<Double>,
        longitude -> Nullable<Double>,
        place_name -> Nullable<Text>,
        attachment_ids -> Text,
        author_id -> Text,
        status -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        title_code -> Nullable<Text>,
    }
}

diesel::table! {
    messages (case_id, id) {
        id -> Text,
        case_id -> Text,
        sender_id -> Text,
        sender_role -> Text,
        direction -> Text,
        channel -> Text,
        internal -> Bool,
        body -> Text,
        attachment_ids -> Text,
        created_at -> Timestamp,
        mention_ids -> Text,
    }
}

diesel::table! {
    message_reads (case_id, user_id) {
        case_id -> Text,
        user_id -> Text,
        last_read_id -> Text,
        read_at -> Timestamp,
    }
}

diesel::table! {
    client_requests (id) {
        id -> Text,
        case_id -> Text,
        kind -> Text,
        prompt -> Text,
        due_at -> Nullable<Timestamp>,
        status -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        answer_text -> Nullable<Text>,
        answer_attachment_ids -> Nullable<Text>,
        answered_by -> Nullable<Text>,
        answered_at -> Nullable<Timestamp>,
        version -> BigInt,
    }
}

diesel::table! {
    video_calls (id) {
        id -> Text,
        case_id -> Text,
        room -> Text,
        url -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    notifications (user_id, id) {
        id -> Text,
        user_id -> Text,
        case_id -> Nullable<Text>,
        event -> Text,
        title -> Text,
        body -> Nullable<Text>,
        created_at -> Timestamp,
        read_at -> Nullable<Timestamp>,
        ticket_id -> Nullable<Text>,
    }
}

diesel::table! {
    email_preferences (user_id, event) {
        user_id -> Text,
        event -> Text,
        enabled -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    email_outbox (id) {
        id -> Text,
        user_id -> Text,
        case_id -> Nullable<Text>,
        event -> Text,
        recipient -> Text,
        recipient_name -> Text,
        locale -> Text,
        subject -> Text,
        body -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(users -> agencies (agency_id));
diesel::joinable!(messages -> cases (case_id));
diesel::joinable!(message_reads -> users (user_id));
diesel::joinable!(storyline_events -> cases (case_id));
diesel::table! {
    surveys (id) {
        id -> Text,
        case_id -> Text,
        client_id -> Text,
        rating -> Integer,
        comment -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    rule_log (id) {
        id -> Text,
        rule -> Text,
        trigger_event -> Text,
        action -> Text,
        case_id -> Nullable<Text>,
        agency_id -> Nullable<Text>,
        outcome -> Text,
        detail -> Nullable<Text>,
        created_at -> Timestamp,
        ticket_id -> Nullable<Text>,
    }
}

diesel::table! {
    tickets (id) {
        id -> Text,
        requester_id -> Text,
        agency_id -> Nullable<Text>,
        case_id -> Nullable<Text>,
        subject -> Text,
        description -> Text,
        status -> Text,
        priority -> Text,
        assignee_id -> Nullable<Text>,
        delegated_by -> Nullable<Text>,
        resolution_type -> Nullable<Text>,
        resolution -> Nullable<Text>,
        resolved_at -> Nullable<Timestamp>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        sla_state -> Nullable<Text>,
        sla_due_at -> Nullable<Timestamp>,
        sla_next_at -> Nullable<Timestamp>,
        number -> Text,
    }
}

diesel::table! {
    ticket_counters (year) {
        year -> Integer,
        last -> BigInt,
    }
}

diesel::table! {
    ticket_messages (ticket_id, id) {
        id -> Text,
        ticket_id -> Text,
        author_id -> Text,
        author_role -> Text,
        body -> Text,
        created_at -> Timestamp,
        attachment_ids -> Text,
    }
}

diesel::table! {
    ticket_attachments (ticket_id, id) {
        ticket_id -> Text,
        id -> Text,
        uploader_id -> Text,
        file_name -> Text,
        content_type -> Text,
        size_bytes -> BigInt,
        sha256 -> Text,
        storage_key -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    presence (user_id) {
        user_id -> Text,
        status -> Text,
        working_on -> Nullable<Text>,
        updated_at -> Timestamp,
        last_assigned_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    awaiting_confirmation (case_id) {
        case_id -> Text,
        completed_at -> Timestamp,
    }
}

diesel::table! {
    calendars (id) {
        id -> Text,
        agency_id -> Nullable<Text>,
        name -> Text,
        time_zone -> Text,
        hours -> Text,
        holidays -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sla_policies (id) {
        id -> Text,
        agency_id -> Nullable<Text>,
        name -> Text,
        calendar_id -> Nullable<Text>,
        warning_percent -> Integer,
        targets -> Text,
        is_default -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sla_clocks (case_id, clock) {
        case_id -> Text,
        clock -> Text,
        policy_id -> Text,
        calendar_id -> Nullable<Text>,
        target_secs -> BigInt,
        warn_secs -> BigInt,
        started_at -> Timestamp,
        elapsed_secs -> BigInt,
        running_since -> Nullable<Timestamp>,
        warn_at -> Nullable<Timestamp>,
        due_at -> Nullable<Timestamp>,
        warned_at -> Nullable<Timestamp>,
        breached_at -> Nullable<Timestamp>,
        stopped_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    ticket_sla_clocks (ticket_id, clock) {
        ticket_id -> Text,
        clock -> Text,
        policy_id -> Text,
        calendar_id -> Nullable<Text>,
        target_secs -> BigInt,
        warn_secs -> BigInt,
        started_at -> Timestamp,
        elapsed_secs -> BigInt,
        running_since -> Nullable<Timestamp>,
        warn_at -> Nullable<Timestamp>,
        due_at -> Nullable<Timestamp>,
        warned_at -> Nullable<Timestamp>,
        breached_at -> Nullable<Timestamp>,
        stopped_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    case_tags (tag, case_id) {
        tag -> Text,
        case_id -> Text,
        agency_id -> Text,
    }
}

diesel::table! {
    triggers (id) {
        id -> Text,
        agency_id -> Text,
        name -> Text,
        event -> Text,
        conditions -> Text,
        actions -> Text,
        active -> Bool,
        version -> BigInt,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        agency_id -> Nullable<Text>,
        url -> Text,
        secret -> Text,
        events -> Text,
        active -> Bool,
        created_by -> Text,
        created_at -> Timestamp,
        version -> BigInt,
        deleted_at -> Nullable<Timestamp>,
        old_secret -> Nullable<Text>,
        old_secret_expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        webhook_id -> Text,
        event -> Text,
        case_id -> Nullable<Text>,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(attachments -> cases (case_id));
diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
diesel::joinable!(sla_policies -> calendars (calendar_id));
diesel::joinable!(ticket_messages -> tickets (ticket_id));
diesel::joinable!(ticket_attachments -> tickets (ticket_id));
diesel::joinable!(presence -> users (user_id));
diesel::joinable!(awaiting_confirmation -> cases (case_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(services -> agencies (agency_id));
diesel::joinable!(cases -> services (service_id));
diesel::joinable!(case_agents -> cases (case_id));
diesel::joinable!(case_agents -> users (user_id));
diesel::joinable!(case_fields -> cases (case_id));
diesel::allow_tables_to_appear_in_same_query!(
    agencies,
    users,
    refresh_tokens,
    services,
    case_counters,
    cases,
    client_open_cases,
    case_agents,
    case_fields,
    audit_log,
    audit_head,
    idempotency_keys,
    loose_blobs,
    attachments,
    storyline_events,
    messages,
    message_reads,
    client_requests,
    video_calls,
    notifications,
    email_preferences,
    email_outbox,
    surveys,
    rule_log,
    awaiting_confirmation,
    tickets,
    ticket_counters,
    ticket_messages,
    ticket_attachments,
    presence,
    calendars,
    sla_policies,
    sla_clocks,
    ticket_sla_clocks,
    webhooks,
    webhook_deliveries,
    triggers,
    case_tags,
);
