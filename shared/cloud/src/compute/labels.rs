//! Merging into a VM's labels and network tags. Both are replaced wholesale by the API and guarded
//! by a fingerprint, so riposte reads, merges (never dropping what is there) and writes with the
//! fingerprint it read; on 412 `conditionNotMet` someone else wrote in between, and it reads and
//! merges again. The `requestId` is derived from the step's key *and* the fingerprint: the same
//! state gives the same request (a crash-retry is recognised), a new state a new one.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::Either;
use google_cloud_compute_v1::model::{Instance, InstancesSetLabelsRequest, Tags};
use riposte_core::action::LabelInstance;
use riposte_core::executor::ExecError;
use riposte_core::requests::{INCIDENT_LABEL_KEY, fingerprinted_request_id};

use super::call::with_retries;
use super::instance::Vm;
use super::operation::Scope;
use super::{ComputeExecutor, Journal, StepContext};

/// How many times a write is retried after losing a fingerprint race before the attempt gives up.
const FINGERPRINT_ROUNDS: usize = 8;

/// Which fingerprinted list of the instance is written.
#[derive(Clone, Copy)]
enum Field {
    Labels,
    Tags,
}

impl Field {
    fn method(self) -> &'static str {
        match self {
            Field::Labels => "setLabels",
            Field::Tags => "setTags",
        }
    }
}

/// A write prepared from one read of the instance.
#[derive(Clone)]
enum Write {
    Labels(InstancesSetLabelsRequest),
    Tags(Tags),
}

fn fingerprint(bytes: Option<&[u8]>) -> String {
    bytes.map(|b| STANDARD.encode(b)).unwrap_or_default()
}

/// Writing `labels` over the instance's, with the fingerprint read (also returned, for the
/// requestId).
fn labels_write(instance: &Instance, labels: impl IntoIterator<Item = (String, String)>) -> (String, Write) {
    let body = InstancesSetLabelsRequest::new()
        .set_labels(labels)
        .set_label_fingerprint(instance.label_fingerprint.clone().unwrap_or_default());
    (fingerprint(instance.label_fingerprint.as_deref()), Write::Labels(body))
}

/// Writing `items` over the instance's network tags `tags`, with their fingerprint.
fn tags_write(tags: &Tags, items: Vec<String>) -> (String, Write) {
    let body = Tags::new().set_items(items).set_fingerprint(tags.fingerprint.clone().unwrap_or_default());
    (fingerprint(tags.fingerprint.as_deref()), Write::Tags(body))
}

/// The write that merges `wanted` into the instance's labels, none when they are all there:
/// the VM's own labels are kept, riposte's values win for its keys.
fn with_labels(instance: &Instance, wanted: &BTreeMap<String, String>) -> Option<(String, Write)> {
    let missing = wanted.iter().any(|(k, v)| instance.labels.get(k) != Some(v));
    missing.then(|| {
        let mut labels = instance.labels.clone();
        labels.extend(wanted.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels_write(instance, labels)
    })
}

/// The write that adds network tag `tag` to the instance's, none when it is there.
fn with_tag(instance: &Instance, tag: &str) -> Option<(String, Write)> {
    let tags = instance.tags.clone().unwrap_or_default();
    (!tags.items.iter().any(|t| t == tag)).then(|| {
        let mut items = tags.items.clone();
        items.push(tag.to_string());
        tags_write(&tags, items)
    })
}

impl ComputeExecutor {
    /// `label_instance`: merges the policy's labels and `riposte-incident` into the VM's labels.
    pub(crate) async fn label_instance(
        &self,
        vm: &Vm,
        p: &LabelInstance,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<String, ExecError> {
        let wanted = p.labels_for(ctx.incident_id);
        let wrote = self.merge_write(vm, Field::Labels, |i| with_labels(i, &wanted), ctx, journal).await?;
        let list = wanted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
        Ok(if wrote { format!("labelled {}: {list}", vm.path()) } else { format!("{} already had {list}", vm.path()) })
    }

    /// Adds network tag `tag` to the VM, keeping its other tags. Returns whether it wrote.
    pub(crate) async fn add_tag(
        &self,
        vm: &Vm,
        tag: &str,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<bool, ExecError> {
        self.merge_write(vm, Field::Tags, |i| with_tag(i, tag), ctx, journal).await
    }

    /// Release of `label_instance`: removes the labels riposte set that still hold its values,
    /// only while `riposte-incident` still names this incident: a newer incident that labelled
    /// the VM again keeps its quarantine labels (as for pods).
    pub(crate) async fn unlabel_instance(
        &self,
        vm: &Vm,
        p: &LabelInstance,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<String, ExecError> {
        let ours = p.labels_for(ctx.incident_id);
        let newer = std::sync::Mutex::new(None);
        let unmerge = |instance: &Instance| {
            let current = instance.labels.get(INCIDENT_LABEL_KEY);
            if current.is_some_and(|c| ours.get(INCIDENT_LABEL_KEY) != Some(c)) {
                *newer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = current.cloned();
                return None;
            }
            *newer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            let mut labels = instance.labels.clone();
            labels.retain(|k, v| ours.get(k) != Some(v));
            (labels.len() != instance.labels.len()).then(|| labels_write(instance, labels))
        };
        let wrote = self.merge_write(vm, Field::Labels, unmerge, ctx, journal).await?;
        let keys = ours.keys().cloned().collect::<Vec<_>>().join(", ");
        let newer = newer.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(match (wrote, newer) {
            (true, _) => format!("removed {keys} from {}", vm.path()),
            (false, Some(other)) => format!("{} is labelled by incident {other} now; its labels are left", vm.path()),
            (false, None) => format!("{} carries none of riposte's labels", vm.path()),
        })
    }

    /// Release of `quarantine_instance`: removes network tag `tag` from the VM.
    pub(crate) async fn remove_tag(
        &self,
        vm: &Vm,
        tag: &str,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<String, ExecError> {
        let unmerge = |instance: &Instance| {
            let tags = instance.tags.clone().unwrap_or_default();
            tags.items.iter().any(|t| t == tag).then(|| {
                let items = tags.items.iter().filter(|t| *t != tag).cloned().collect();
                tags_write(&tags, items)
            })
        };
        let wrote = self.merge_write(vm, Field::Tags, unmerge, ctx, journal).await?;
        Ok(if wrote {
            format!("removed the tag {tag} from {}: the quarantine rules no longer apply to it", vm.path())
        } else {
            format!("{} did not carry the tag {tag}", vm.path())
        })
    }

    /// Reads, merges and writes until the write lands or nothing is missing. Returns whether it wrote.
    async fn merge_write(
        &self,
        vm: &Vm,
        field: Field,
        merge: impl Fn(&Instance) -> Option<(String, Write)>,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<bool, ExecError> {
        let what = format!("{} on {}", field.method(), vm.path());
        let mut instance = vm.instance.clone();
        for _ in 0..FINGERPRINT_ROUNDS {
            let Some((fp, write)) = merge(&instance) else { return Ok(false) };
            let rid = fingerprinted_request_id(ctx.key, field.method(), &fp);
            let sent = with_retries(&self.settings.retry, || {
                let i = &self.clients.instances;
                match write.clone() {
                    Write::Labels(body) => Either::Left(
                        i.set_labels()
                            .set_project(&vm.project)
                            .set_zone(&vm.zone)
                            .set_instance(&vm.name)
                            .set_request_id(&rid)
                            .set_body(body)
                            .send(),
                    ),
                    Write::Tags(body) => Either::Right(
                        i.set_tags()
                            .set_project(&vm.project)
                            .set_zone(&vm.zone)
                            .set_instance(&vm.name)
                            .set_request_id(&rid)
                            .set_body(body)
                            .send(),
                    ),
                }
            })
            .await;
            match sent {
                Ok(op) => {
                    let url = self.url(&format!("{}/{}?requestId={rid}", vm.path(), field.method()));
                    match &write {
                        Write::Labels(body) => journal.sent("POST", url, Some(body), None),
                        Write::Tags(body) => journal.sent("POST", url, Some(body), None),
                    }
                    self.wait(&vm.project, Scope::Zone(&vm.zone), op, &what).await?.map_err(|f| f.into_exec(&what))?;
                    return Ok(true);
                }
                Err(e) if e.stale_fingerprint() => {
                    tracing::info!(vm = %vm.path(), field = field.method(), "fingerprint changed under us; merging again");
                    instance = self.reread(vm, &what).await?;
                }
                Err(e) => return Err(e.into_exec(&what)),
            }
        }
        Err(ExecError::Retryable(format!("{what}: the fingerprint kept changing ({FINGERPRINT_ROUNDS} rounds)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Instance {
        Instance::new()
            .set_labels([("env", "prod"), ("riposte-state", "old")])
            .set_label_fingerprint(&b"fp-1"[..])
            .set_tags(Tags::new().set_items(["gke-node"]).set_fingerprint(&b"fp-2"[..]))
    }

    /// The labels sent keep the VM's own, carry the step's, and are conditional on the
    /// fingerprint read; nothing is sent when the VM already has them.
    #[test]
    fn label_and_tag_writes_keep_what_the_vm_has_and_carry_the_fingerprint_read() {
        let wanted = LabelInstance { labels: BTreeMap::from([("riposte-state".into(), "quarantined".into())]) }
            .labels_for("20261205-010203-abcd1234");
        let Some((fp, Write::Labels(body))) = with_labels(&node(), &wanted) else { panic!("a labels write") };
        assert_eq!(fp, STANDARD.encode(b"fp-1"));
        assert_eq!(body.label_fingerprint.as_deref(), Some(&b"fp-1"[..]));
        let sent: BTreeMap<&str, &str> = body.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            sent,
            BTreeMap::from([
                ("env", "prod"),
                ("riposte-incident", "20261205-010203-abcd1234"),
                ("riposte-state", "quarantined")
            ])
        );
        let labelled = node().set_labels(body.labels.clone());
        assert!(with_labels(&labelled, &wanted).is_none(), "already labelled: nothing to send");

        let Some((fp, Write::Tags(tags))) = with_tag(&node(), "riposte-quarantine") else { panic!("a tags write") };
        assert_eq!(
            (fp, tags.items.clone()),
            (STANDARD.encode(b"fp-2"), vec!["gke-node".to_string(), "riposte-quarantine".into()])
        );
        assert!(with_tag(&node().set_tags(tags), "riposte-quarantine").is_none());
    }
}
