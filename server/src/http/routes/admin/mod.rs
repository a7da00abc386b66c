//! The admin API (`/api/admin/...`): people, devices, the retention policy, holds, deletion
//! receipts and the audit log. Admins manage accounts and recordings' lifecycles; they never get a recording's
//! content or comments (the recordings list here is metadata only).
//!
//! One file per thing admins manage: [`people`], [`devices`], [`retention`] (and holds),
//! [`receipts`], [`audit`], [`timetable`] (bookings from the MIS). Groups of coaches are in `routes::groups`, with the teachers' side.

mod audit;
mod devices;
mod people;
mod receipts;
mod retention;
mod timetable;

use super::Route;
use axum::routing::{delete, get, post, put};

pub fn routes() -> Vec<Route> {
    vec![
        ("GET", "/api/admin/users", get(people::users)),
        ("POST", "/api/admin/users", post(people::add_user)),
        (
            "POST",
            "/api/admin/users/{username}/disable",
            post(people::disable),
        ),
        (
            "POST",
            "/api/admin/users/{username}/enable",
            post(people::enable),
        ),
        (
            "POST",
            "/api/admin/users/{username}/offboard",
            post(people::offboard),
        ),
        (
            "POST",
            "/api/admin/users/{username}/cancel-offboard",
            post(people::cancel_offboard),
        ),
        (
            "POST",
            "/api/admin/users/{username}/reset-second-factor",
            post(people::reset_second_factor),
        ),
        (
            "POST",
            "/api/admin/users/{username}/invite",
            post(people::invite),
        ),
        ("GET", "/api/admin/retention", get(retention::policy)),
        ("PUT", "/api/admin/retention", put(retention::set_policy)),
        ("GET", "/api/admin/recordings", get(retention::recordings)),
        (
            "PUT",
            "/api/admin/recordings/{id}/hold",
            put(retention::hold),
        ),
        (
            "DELETE",
            "/api/admin/recordings/{id}/hold",
            delete(retention::release),
        ),
        ("POST", "/api/admin/roster", post(people::roster_import)),
        ("POST", "/api/admin/timetable", post(timetable::import)),
        ("GET", "/api/admin/devices", get(devices::devices_list)),
        ("POST", "/api/admin/devices", post(devices::enrollment_code)),
        (
            "POST",
            "/api/admin/devices/{name}/revoke",
            post(devices::revoke_device),
        ),
        ("GET", "/api/admin/receipts", get(receipts::receipts)),
        ("GET", "/api/admin/audit", get(audit::audit_json)),
        ("GET", "/api/admin/audit.csv", get(audit::audit_csv)),
    ]
}
