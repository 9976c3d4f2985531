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

diesel::joinable!(users -> agencies (agency_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(agencies, users, refresh_tokens);
