//! The static shape of a workflow: a constant built by `#[workflow]`.

use crate::job::JobOptions;

/// A workflow's DAG as declared: its steps in declaration order (so every dependency names an
/// earlier step) and the step whose output is the run's output.
#[derive(Debug, Clone, Copy)]
pub struct WorkflowShape {
    /// The workflow's stable name.
    pub name: &'static str,
    /// The steps, in declaration order.
    pub steps: &'static [StepShape],
    /// The key of the step whose output is the run's output, if any.
    pub output: Option<&'static str>,
}

/// One step of a workflow.
#[derive(Debug, Clone, Copy)]
pub struct StepShape {
    /// The step's key: the `let` name it was declared with (or the job's name for an unnamed
    /// step).
    pub key: &'static str,
    /// What the step runs.
    pub kind: StepKind,
    /// The steps it waits for.
    pub after: &'static [Dependency],
    /// Its arguments taken from other steps' outputs.
    pub bindings: &'static [Binding],
}

/// What a step runs.
#[derive(Debug, Clone, Copy)]
pub enum StepKind {
    /// A job of this kind, enqueued with these options when the step is released.
    Job {
        /// The job kind.
        kind: &'static str,
        /// The kind's options (queue, priority, attempts, timeout).
        options: JobOptions,
    },
    /// A gate completed from outside with
    /// [`WorkflowHandle::complete_gate`](crate::workflow::WorkflowHandle::complete_gate).
    Gate {
        /// The gate's name.
        name: &'static str,
    },
}

/// An edge into a step.
#[derive(Debug, Clone, Copy)]
pub struct Dependency {
    /// The earlier step waited for.
    pub step: &'static str,
    /// `true` for `.after_any(step)`: satisfied however the step ends. Otherwise only its
    /// success satisfies the edge, and its failure skips the waiting step.
    pub on_any: bool,
}

/// A data edge: parameter `param` takes `step`'s output at `path`.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The parameter (payload field) of the waiting step.
    pub param: &'static str,
    /// The step whose output is used.
    pub step: &'static str,
    /// Field path into that output; empty for the whole output.
    pub path: &'static [&'static str],
}

impl WorkflowShape {
    /// A 64-bit hash of everything that makes the shape: name, steps, kinds, edges, bindings and
    /// output. Runs record it; a run started under another fingerprint was started by another
    /// version of the workflow.
    pub const fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new().str(self.name);
        let mut i = 0;
        while i < self.steps.len() {
            let step = &self.steps[i];
            h = h.str(step.key);
            h = match step.kind {
                StepKind::Job { kind, .. } => h.byte(1).str(kind),
                StepKind::Gate { name } => h.byte(2).str(name),
            };
            let mut j = 0;
            while j < step.after.len() {
                h = h.str(step.after[j].step).byte(step.after[j].on_any as u8);
                j += 1;
            }
            h = h.byte(3);
            let mut j = 0;
            while j < step.bindings.len() {
                let b = &step.bindings[j];
                h = h.str(b.param).str(b.step);
                let mut k = 0;
                while k < b.path.len() {
                    h = h.str(b.path[k]);
                    k += 1;
                }
                h = h.byte(4);
                j += 1;
            }
            h = h.byte(5);
            i += 1;
        }
        match self.output {
            Some(output) => h.byte(6).str(output).0,
            None => h.byte(7).0,
        }
    }

    /// The fingerprint as stored: 16 hex digits.
    pub fn fingerprint_hex(&self) -> String {
        format!("{:016x}", self.fingerprint())
    }

    /// The step with this key.
    pub fn step(&self, key: &str) -> Option<&StepShape> {
        self.steps.iter().find(|s| s.key == key)
    }
}

/// FNV-1a, usable in const context; strings are length-prefixed so that concatenations differ.
struct Fnv(u64);

impl Fnv {
    const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    const fn byte(self, b: u8) -> Self {
        Fnv((self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
    }
    const fn str(self, s: &str) -> Self {
        let bytes = s.as_bytes();
        let mut h = self;
        let len = bytes.len() as u64;
        let mut i = 0;
        while i < 8 {
            h = h.byte((len >> (i * 8)) as u8);
            i += 1;
        }
        let mut i = 0;
        while i < bytes.len() {
            h = h.byte(bytes[i]);
            i += 1;
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: WorkflowShape = WorkflowShape {
        name: "w",
        steps: &[
            StepShape {
                key: "a",
                kind: StepKind::Job {
                    kind: "job_a",
                    options: JobOptions::new(),
                },
                after: &[],
                bindings: &[],
            },
            StepShape {
                key: "b",
                kind: StepKind::Job {
                    kind: "job_b",
                    options: JobOptions::new(),
                },
                after: &[Dependency {
                    step: "a",
                    on_any: false,
                }],
                bindings: &[Binding {
                    param: "x",
                    step: "a",
                    path: &["y"],
                }],
            },
        ],
        output: Some("b"),
    };

    #[test]
    fn fingerprint_is_a_constant_and_changes_with_the_shape() {
        const F: u64 = A.fingerprint();
        assert_eq!(F, A.fingerprint());
        assert_eq!(A.fingerprint_hex().len(), 16);
        let mut b = A;
        b.output = Some("a");
        assert_ne!(b.fingerprint(), F);
        let steps = [A.steps[0], {
            let mut s = A.steps[1];
            s.after = &[Dependency {
                step: "a",
                on_any: true,
            }];
            s
        }];
        let steps: &'static [StepShape] = Box::leak(Box::new(steps));
        let c = WorkflowShape { steps, ..A };
        assert_ne!(c.fingerprint(), F);
    }
}
