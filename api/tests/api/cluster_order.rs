//! Listing clusters: every order, forward and backward across pages, with ties between
//! equal keys; cursors bound to their order; filters by status and name prefix.

use chrono::{Duration, SubsecRound, Utc};
use entity::{clusters, enums::ClusterStatus};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{TestApp, error_code, spawn_app},
    ssh_keys::uuid_of,
};

const CREATE_CLUSTER: &str =
    "mutation($input: CreateClusterInput!) { createCluster(input: $input) { cluster { id } } }";
const LIST: &str = "query($o: ID, $order: ClusterOrder, $filter: ClusterFilterInput, $first: Int, $last: Int, $after: String, $before: String) {
    clusters(organizationId: $o, orderBy: $order, filter: $filter, first: $first, last: $last, after: $after, before: $before) {
        totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { name } } } }";

async fn create(app: &TestApp, org: &str, name: &str) -> Uuid {
    let data = app
        .gql_ok(
            CREATE_CLUSTER,
            json!({ "input": { "organizationId": org, "name": name } }),
        )
        .await;
    uuid_of(data["createCluster"]["cluster"]["id"].as_str().unwrap())
}

/// Sets columns straight in the database (an update through the model would bump
/// `updated_at`).
async fn set(app: &TestApp, id: Uuid, column: clusters::Column, value: impl Into<sea_orm::Value>) {
    clusters::Entity::update_many()
        .col_expr(column, Expr::val(value.into()))
        .filter(clusters::Column::Id.eq(id))
        .exec(&app.state.db)
        .await
        .unwrap();
}

fn names(page: &Value) -> Vec<String> {
    page["clusters"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every name, paging forward `size` at a time from the start.
async fn forward(app: &TestApp, vars: Value, size: i64) -> Vec<String> {
    let (mut all, mut after, mut pages) = (Vec::new(), Value::Null, 0);
    loop {
        let mut v = vars.clone();
        v["first"] = json!(size);
        v["after"] = after;
        let page = app.gql_ok(LIST, v).await;
        let info = &page["clusters"]["pageInfo"];
        assert_eq!(info["hasPreviousPage"], pages > 0, "{page}");
        all.extend(names(&page));
        pages += 1;
        assert!(pages < 50, "paging does not end");
        if info["hasNextPage"] != true {
            return all;
        }
        after = info["endCursor"].clone();
    }
}

/// Every name, paging backward `size` at a time from the end.
async fn backward(app: &TestApp, vars: Value, size: i64) -> Vec<String> {
    let (mut all, mut before, mut pages) = (Vec::new(), Value::Null, 0);
    loop {
        let mut v = vars.clone();
        v["last"] = json!(size);
        v["before"] = before;
        let page = app.gql_ok(LIST, v).await;
        let info = &page["clusters"]["pageInfo"];
        assert_eq!(info["hasNextPage"], pages > 0, "{page}");
        let mut got = names(&page);
        got.extend(all);
        all = got;
        pages += 1;
        assert!(pages < 50, "paging does not end");
        if info["hasPreviousPage"] != true {
            return all;
        }
        before = info["startCursor"].clone();
    }
}

fn rank(status: ClusterStatus) -> usize {
    use sea_orm::Iterable;
    ClusterStatus::iter().position(|s| s == status).unwrap()
}

/// The names in the order the API must give: the key, then the id, both in `direction`.
fn expected(rows: &[clusters::Model], field: &str, desc: bool) -> Vec<String> {
    let mut rows: Vec<&clusters::Model> = rows.iter().collect();
    rows.sort_by(|a, b| {
        let key = match field {
            "NAME" => a.name.cmp(&b.name),
            "CREATED_AT" => a.created_at.cmp(&b.created_at),
            "UPDATED_AT" => a.updated_at.cmp(&b.updated_at),
            "STATUS" => rank(a.status).cmp(&rank(b.status)),
            _ => std::cmp::Ordering::Equal,
        };
        key.then(a.id.cmp(&b.id))
    });
    if desc {
        rows.reverse();
    }
    rows.into_iter().map(|c| c.name.clone()).collect()
}

#[tokio::test]
async fn clusters_page_exactly_in_every_order_both_ways() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    let names_in_creation_order = [
        "delta", "alpha", "echo", "charlie", "bravo", "golf", "foxtrot",
    ];
    let statuses = [
        ClusterStatus::Ready,
        ClusterStatus::Pending,
        ClusterStatus::Ready,
        ClusterStatus::Failed,
        ClusterStatus::Pending,
        ClusterStatus::Ready,
        ClusterStatus::Degraded,
    ];
    let base = (Utc::now() - Duration::days(1)).trunc_subsecs(0);
    for (i, name) in names_in_creation_order.iter().enumerate() {
        let id = create(&app, &org, name).await;
        set(&app, id, clusters::Column::Status, statuses[i]).await;
        // Pairs share a creation time, and every third a time of update: ties the id breaks.
        // Fractions of 0, 3 and 6 digits: SQLite compares these timestamps as text.
        let created = base + Duration::milliseconds(250 * (i / 2) as i64);
        let updated = base + Duration::hours(1) - Duration::microseconds(1500 * (i % 3) as i64);
        set(&app, id, clusters::Column::CreatedAt, created).await;
        set(&app, id, clusters::Column::UpdatedAt, updated).await;
    }
    let rows = clusters::Entity::find().all(&app.state.db).await.unwrap();

    let default = expected(&rows, "ID", false);
    assert_eq!(default, names_in_creation_order, "default: oldest first");
    let vars = json!({ "o": org });
    assert_eq!(forward(&app, vars.clone(), 3).await, default);
    assert_eq!(backward(&app, vars, 3).await, default);

    for field in ["NAME", "CREATED_AT", "UPDATED_AT", "STATUS"] {
        for direction in ["ASC", "DESC"] {
            let want = expected(&rows, field, direction == "DESC");
            let vars = json!({ "o": org, "order": { "field": field, "direction": direction } });
            for size in [1, 2, 3] {
                assert_eq!(
                    forward(&app, vars.clone(), size).await,
                    want,
                    "{field} {direction} forward by {size}"
                );
                assert_eq!(
                    backward(&app, vars.clone(), size).await,
                    want,
                    "{field} {direction} backward by {size}"
                );
            }
        }
    }
    let status_order = expected(&rows, "STATUS", false);
    assert_eq!(
        &status_order[..2],
        ["alpha", "bravo"],
        "PENDING first (lifecycle order, not alphabetical)"
    );

    // The direction defaults to ASC; filters and totalCount apply in any order.
    let page = app
        .gql_ok(
            LIST,
            json!({ "o": org, "order": { "field": "NAME" }, "filter": { "status": ["READY", "PENDING"] }, "first": 2 }),
        )
        .await;
    assert_eq!(names(&page), ["alpha", "bravo"]);
    assert_eq!(page["clusters"]["totalCount"], 5);
    let rest = app
        .gql_ok(
            LIST,
            json!({ "o": org, "order": { "field": "NAME" }, "filter": { "status": ["READY", "PENDING"] },
                "first": 10, "after": page["clusters"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(names(&rest), ["delta", "echo", "golf"]);
    let between = app
        .gql_ok(
            LIST,
            json!({ "o": org, "order": { "field": "NAME" }, "filter": { "status": ["READY", "PENDING"] },
                "after": page["clusters"]["edges"][0]["cursor"], "before": rest["clusters"]["edges"][2]["cursor"] }),
        )
        .await;
    assert_eq!(names(&between), ["bravo", "delta", "echo"]);
}

#[tokio::test]
async fn a_cursor_only_works_with_the_order_it_was_made_in() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    for name in ["a1", "a2", "a3"] {
        create(&app, &org, name).await;
    }
    let by_name = app
        .gql_ok(
            LIST,
            json!({ "o": org, "order": { "field": "NAME" }, "first": 1 }),
        )
        .await;
    let cursor = by_name["clusters"]["pageInfo"]["endCursor"].clone();
    for other in [
        json!({ "field": "CREATED_AT" }),
        json!({ "field": "NAME", "direction": "DESC" }),
        Value::Null,
    ] {
        let resp = app
            .gql(
                LIST,
                json!({ "o": org, "order": other, "first": 1, "after": cursor }),
            )
            .await;
        assert_eq!(error_code(&resp), "BAD_USER_INPUT", "{resp:#}");
        assert_eq!(resp["errors"][0]["extensions"]["field"], "after");
    }
    // Not a cursor of ours at all, and an id cursor of the id-ordered lists.
    use base64::Engine;
    let id_cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::now_v7());
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        r#"{"o":"name.asc","c":{"key":{"Int":3},"id":"0192e4a0-0000-7000-8000-000000000000"}}"#,
    );
    for bad in ["zz", id_cursor.as_str(), forged.as_str()] {
        let resp = app
            .gql(
                LIST,
                json!({ "o": org, "order": { "field": "NAME" }, "last": 1, "before": bad }),
            )
            .await;
        assert_eq!(error_code(&resp), "BAD_USER_INPUT", "{resp:#}");
        assert_eq!(resp["errors"][0]["extensions"]["field"], "before");
    }
}

/// (totalCount, names) of the clusters matching `filter`.
async fn count(app: &TestApp, org: &str, filter: Value) -> (u64, Vec<String>) {
    let page = app
        .gql_ok(LIST, json!({ "o": org, "filter": filter }))
        .await;
    (
        page["clusters"]["totalCount"].as_u64().unwrap(),
        names(&page),
    )
}

#[tokio::test]
async fn clusters_filter_by_status_and_a_literal_name_prefix() {
    let app = spawn_app().await;
    let org = app.create_org("acme").await;
    for name in ["prod-eu1", "prod-us1", "prodx", "staging"] {
        create(&app, &org, name).await;
    }
    let staging = clusters::Entity::find()
        .filter(clusters::Column::Name.eq("staging"))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    set(
        &app,
        staging.id,
        clusters::Column::Status,
        ClusterStatus::Ready,
    )
    .await;

    assert_eq!(
        count(&app, &org, json!({ "namePrefix": "prod" })).await.0,
        3
    );
    assert_eq!(
        count(&app, &org, json!({ "namePrefix": "prod-" })).await.1,
        ["prod-eu1", "prod-us1"]
    );
    assert_eq!(
        count(&app, &org, json!({ "namePrefix": "PROD-" })).await.0,
        2,
        "case-insensitive on both backends"
    );
    // LIKE wildcards in the prefix match only themselves.
    for literal in ["prod_", "%", "prod%1", "_"] {
        assert_eq!(
            count(&app, &org, json!({ "namePrefix": literal })).await.0,
            0,
            "{literal}"
        );
    }
    assert_eq!(
        count(&app, &org, json!({ "status": ["READY"] })).await.1,
        ["staging"]
    );
    assert_eq!(
        count(
            &app,
            &org,
            json!({ "status": ["PENDING"], "namePrefix": "prod-u" })
        )
        .await
        .1,
        ["prod-us1"]
    );
    assert_eq!(
        count(&app, &org, json!({ "status": [] })).await.0,
        4,
        "no statuses: any"
    );
}
