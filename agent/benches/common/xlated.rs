//! Paths through a loaded program as the verifier translated it (`bpftool
//! -j prog dump xlated id N linum`): how many instructions run from the
//! entry to an exit along the path that passes given source lines (matched
//! by their text, so that a path survives edits elsewhere in the file), which
//! no timing noise moves.
//!
//! Branches on values the program reads from its read-only data (settings
//! the loader wrote before loading, such as "record every cgroup") and on
//! constants are decided as the loaded program decides them; every other
//! branch may go either way, so a path is given as the fewest and the most
//! instructions between its source lines.

use std::collections::HashMap;
use std::process::Command;

/// One translated instruction.
struct Insn {
    /// Its first slot (a 64-bit immediate load takes two).
    pc: usize,
    /// The text of the source line it came from, carried over from the
    /// line info's last record.
    source: String,
    /// `bpftool`'s text without the opcode, e.g. `if r1 != 0x0 goto pc+4`.
    text: String,
    /// The opcode byte.
    opcode: u8,
}

/// A path: the source lines it passes, in order, and the lines it never
/// passes, each given by a piece of its text.
pub struct Route<'a> {
    pub via: &'a [&'a str],
    pub avoid: &'a [&'a str],
}

/// The fewest and the most instructions a path runs.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub fewest: usize,
    /// `None` when a loop lies on the path.
    pub most: Option<usize>,
}

/// A loaded program's translated instructions, ready for path questions.
pub struct Program {
    insns: Vec<Insn>,
    /// Index of the instruction at each first slot.
    at_pc: HashMap<usize, usize>,
    /// Successors of each instruction, after deciding constant branches.
    next: Vec<Vec<usize>>,
}

impl Program {
    /// Reads program `id` from the kernel (bpftool), with the contents of its
    /// read-only data maps.
    pub fn load(id: u64) -> Option<Program> {
        let json = bpftool_json(&["prog", "dump", "xlated", "id", &id.to_string(), "linum"])?;
        let entries = json.as_array()?;
        Some(Program::parse(entries, &read_only_maps(entries)))
    }

    /// Builds the program from bpftool's JSON and the read-only maps' bytes
    /// (map id → value of key 0).
    fn parse(entries: &[serde_json::Value], rodata: &HashMap<u64, Vec<u8>>) -> Program {
        let mut insns = Vec::new();
        let (mut pc, mut source) = (0, String::new());
        for e in entries {
            if let Some(src) = e["src"].as_str() {
                source = src.to_string();
            }
            let disasm = e["disasm"].as_str().unwrap_or_default();
            let (opcode, text) = split_opcode(disasm);
            insns.push(Insn {
                pc,
                source: source.clone(),
                text: text.to_string(),
                opcode,
            });
            pc += if opcode == 0x18 { 2 } else { 1 };
        }
        let at_pc = insns
            .iter()
            .enumerate()
            .map(|(i, insn)| (insn.pc, i))
            .collect();
        let mut program = Program {
            insns,
            at_pc,
            next: Vec::new(),
        };
        program.next = program.successors(rodata);
        program
    }

    /// Total instructions.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// The fewest and the most instructions from the entry to an exit along
    /// `route`. An error names a piece of source text that no instruction
    /// comes from (the route no longer fits the program), or says that no
    /// path fits.
    pub fn span(&self, route: &Route) -> Result<Span, String> {
        for piece in route.via.iter().chain(route.avoid) {
            if !self.insns.iter().any(|insn| insn.source.contains(piece)) {
                return Err(format!("no instruction comes from `{piece}`"));
            }
        }
        self.walk(route).ok_or_else(|| "no such path".to_string())
    }

    fn walk(&self, route: &Route) -> Option<Span> {
        let matches = |i: usize, piece: &str| self.insns[i].source.contains(piece);
        let allowed = |i: usize| !route.avoid.iter().any(|l| matches(i, l));
        // The state after running instruction i: how many via lines passed.
        let step = |i: usize, k: usize| {
            if k < route.via.len() && matches(i, route.via[k]) {
                k + 1
            } else {
                k
            }
        };
        let goal = |i: usize, k: usize| self.next[i].is_empty() && k == route.via.len();
        if self.insns.is_empty() || !allowed(0) {
            return None;
        }
        // Fewest: breadth first over (instruction, via lines passed).
        let start = (0, step(0, 0));
        let mut depth = HashMap::from([(start, 1usize)]);
        let mut queue = std::collections::VecDeque::from([start]);
        let mut fewest = None;
        while let Some((i, k)) = queue.pop_front() {
            let d = depth[&(i, k)];
            if goal(i, k) {
                fewest = Some(d);
                break;
            }
            for &j in &self.next[i] {
                let state = (j, step(j, k));
                if allowed(j) && !depth.contains_key(&state) {
                    depth.insert(state, d + 1);
                    queue.push_back(state);
                }
            }
        }
        let fewest = fewest?;
        // Most: depth first with memory; a loop on a way to the goal makes
        // it unbounded.
        let mut memo: HashMap<(usize, usize), Option<Option<usize>>> = HashMap::new();
        let most = self.longest(start, &allowed, &step, &goal, &mut memo);
        Some(Span {
            fewest,
            most: most.flatten(),
        })
    }

    /// The most instructions from `state` to the goal: `Some(None)` when the
    /// goal cannot be reached, `None` when a loop makes it unbounded.
    fn longest(
        &self,
        state: (usize, usize),
        allowed: &dyn Fn(usize) -> bool,
        step: &dyn Fn(usize, usize) -> usize,
        goal: &dyn Fn(usize, usize) -> bool,
        memo: &mut HashMap<(usize, usize), Option<Option<usize>>>,
    ) -> Option<Option<usize>> {
        if let Some(known) = memo.get(&state) {
            // `None`: still being computed further up, a loop.
            return *known;
        }
        let (i, k) = state;
        if goal(i, k) {
            memo.insert(state, Some(Some(1)));
            return Some(Some(1));
        }
        memo.insert(state, None);
        let mut best: Option<usize> = None;
        for &j in &self.next[i] {
            if !allowed(j) {
                continue;
            }
            match self.longest((j, step(j, k)), allowed, step, goal, memo) {
                None => return None,
                Some(Some(m)) => best = Some(best.map_or(m + 1, |b| b.max(m + 1))),
                Some(None) => {}
            }
        }
        memo.insert(state, Some(best));
        Some(best)
    }

    /// Each instruction's successors, with branches on constants decided.
    fn successors(&self, rodata: &HashMap<u64, Vec<u8>>) -> Vec<Vec<usize>> {
        let target = |i: usize, off: i64| {
            let pc = self.insns[i].pc as i64 + 1 + off;
            usize::try_from(pc)
                .ok()
                .and_then(|pc| self.at_pc.get(&pc).copied())
        };
        // Instructions something jumps to start a block: what is known of
        // the registers is forgotten there.
        let mut starts = vec![false; self.insns.len()];
        for (i, insn) in self.insns.iter().enumerate() {
            if let Some(off) = jump_offset(&insn.text)
                && let Some(t) = target(i, off)
            {
                starts[t] = true;
            }
        }
        let mut known: HashMap<String, Value> = HashMap::new();
        let mut next = Vec::with_capacity(self.insns.len());
        for (i, insn) in self.insns.iter().enumerate() {
            if starts[i] {
                known.clear();
            }
            let fall = self.insns.get(i + 1).map(|_| i + 1);
            let text = insn.text.as_str();
            let class = insn.opcode & 0x07;
            let is_jump = class == 0x05 || class == 0x06;
            let succ: Vec<usize> = if text == "exit" {
                Vec::new()
            } else if is_jump && text.starts_with("goto") {
                jump_offset(text)
                    .and_then(|off| target(i, off))
                    .into_iter()
                    .collect()
            } else if is_jump && text.starts_with("if ") {
                let taken = jump_offset(text).and_then(|off| target(i, off));
                match decide(text, &known) {
                    Some(true) => taken.into_iter().collect(),
                    Some(false) => fall.into_iter().collect(),
                    None => fall.into_iter().chain(taken).collect(),
                }
            } else {
                fall.into_iter().collect()
            };
            track(text, insn.opcode, &mut known, rodata);
            if is_jump {
                known.clear();
            }
            next.push(succ);
        }
        next
    }
}

/// What is known of a register within a block.
#[derive(Clone, Copy)]
enum Value {
    Const(u64),
    /// A pointer into the value of read-only map `id`, at `offset`.
    ReadOnly {
        id: u64,
        offset: u64,
    },
}

/// `(55) if r1 != 0x0 goto pc+4` → (0x55, `if r1 != 0x0 goto pc+4`).
fn split_opcode(disasm: &str) -> (u8, &str) {
    disasm
        .strip_prefix('(')
        .and_then(|s| s.split_once(") "))
        .and_then(|(op, rest)| Some((u8::from_str_radix(op, 16).ok()?, rest)))
        .unwrap_or((0, disasm))
}

/// The offset of a jump (`goto pc+4`, `goto pc-2`), if it is one.
fn jump_offset(text: &str) -> Option<i64> {
    let (_, off) = text.rsplit_once("goto pc")?;
    off.trim_start_matches('+').parse().ok()
}

/// A register operand: `r1`, `w1` → `1`.
fn register(token: &str) -> Option<String> {
    let digits = token
        .strip_prefix('r')
        .or_else(|| token.strip_prefix('w'))?;
    digits
        .chars()
        .all(|c| c.is_ascii_digit())
        .then(|| digits.to_string())
}

fn number(token: &str) -> Option<u64> {
    if let Some(hex) = token.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()
    } else if let Some(neg) = token.strip_prefix('-') {
        neg.parse::<i64>().ok().map(|n| (-n) as u64)
    } else {
        token.parse().ok()
    }
}

/// Decides `if rX OP K goto ...` when rX holds a known constant.
fn decide(text: &str, known: &HashMap<String, Value>) -> Option<bool> {
    let mut words = text.split_whitespace().skip(1);
    let (reg, op, operand) = (words.next()?, words.next()?, words.next()?);
    let narrow = reg.starts_with('w');
    let Value::Const(mut a) = *known.get(&register(reg)?)? else {
        return None;
    };
    let mut b = match register(operand) {
        Some(r) => match known.get(&r)? {
            Value::Const(v) => *v,
            Value::ReadOnly { .. } => return None,
        },
        None => number(operand)?,
    };
    if narrow {
        a &= 0xffff_ffff;
        b &= 0xffff_ffff;
    }
    let (sa, sb) = if narrow {
        (a as u32 as i32 as i64, b as u32 as i32 as i64)
    } else {
        (a as i64, b as i64)
    };
    Some(match op {
        "==" => a == b,
        "!=" => a != b,
        ">" => a > b,
        ">=" => a >= b,
        "<" => a < b,
        "<=" => a <= b,
        "s>" => sa > sb,
        "s>=" => sa >= sb,
        "s<" => sa < sb,
        "s<=" => sa <= sb,
        "&" => a & b != 0,
        _ => return None,
    })
}

/// Updates what is known after one instruction: constants moved in, pointers
/// into read-only maps, and loads through them; anything else a register
/// receives makes it unknown, and a call clobbers r0-r5.
fn track(
    text: &str,
    opcode: u8,
    known: &mut HashMap<String, Value>,
    rodata: &HashMap<u64, Vec<u8>>,
) {
    if text.starts_with("call ") {
        for r in 0..=5 {
            known.remove(&r.to_string());
        }
        return;
    }
    let mut words = text.split_whitespace();
    let (Some(dest), Some(op)) = (words.next(), words.next()) else {
        return;
    };
    let Some(dest) = register(dest) else {
        // A store, or an atomic whose result register is not named first.
        if let Some(r) = text
            .split_once(" = atomic")
            .and_then(|(d, _)| register(d.trim()))
        {
            known.remove(&r);
        }
        return;
    };
    if !op.ends_with('=') || op == "==" {
        known.remove(&dest);
        return;
    }
    let rest: Vec<&str> = words.collect();
    let value = match (op, opcode, rest.as_slice()) {
        // rX = K (mov), rX = K ll (64-bit immediate)
        ("=", 0xb7 | 0xb4 | 0x18, [k, ..]) if number(k).is_some() => number(k).map(Value::Const),
        // rX = map[id:M][0]+O
        ("=", 0x18, [m]) => map_value(m).map(|(id, offset)| Value::ReadOnly { id, offset }),
        // rX = *(uN *)(rY +D)
        ("=", 0x61 | 0x69 | 0x71 | 0x79, [_, base, off]) => load(opcode, base, off, known, rodata),
        _ => None,
    };
    match value {
        Some(v) => known.insert(dest, v),
        None => known.remove(&dest),
    };
}

/// `map[id:43163][0]+8` → (43163, 8).
fn map_value(token: &str) -> Option<(u64, u64)> {
    let rest = token.strip_prefix("map[id:")?;
    let (id, rest) = rest.split_once(']')?;
    let offset = rest.strip_prefix("[0]+")?;
    Some((id.parse().ok()?, offset.parse().ok()?))
}

/// A load through a pointer into a read-only map (`*)(r1` `+8)`): the bytes
/// there, little endian.
fn load(
    opcode: u8,
    base: &str,
    off: &str,
    known: &HashMap<String, Value>,
    rodata: &HashMap<u64, Vec<u8>>,
) -> Option<Value> {
    let base = register(base.strip_prefix("*)(")?)?;
    let off: i64 = off
        .strip_suffix(')')?
        .trim_start_matches('+')
        .parse()
        .ok()?;
    let Value::ReadOnly { id, offset } = *known.get(&base)? else {
        return None;
    };
    let width = match opcode {
        0x71 => 1,
        0x69 => 2,
        0x61 => 4,
        _ => 8,
    };
    let start = usize::try_from(offset as i64 + off).ok()?;
    let bytes = rodata.get(&id)?.get(start..start + width)?;
    Some(Value::Const(
        bytes.iter().rev().fold(0, |v, b| v << 8 | u64::from(*b)),
    ))
}

/// The read-only data maps the program reads (`map[id:M][0]+O` loads whose
/// map is named `*.rodata`): map id → the bytes of its one value.
fn read_only_maps(entries: &[serde_json::Value]) -> HashMap<u64, Vec<u8>> {
    let mut maps = HashMap::new();
    for e in entries {
        let Some(disasm) = e["disasm"].as_str() else {
            continue;
        };
        let Some((id, _)) = disasm.split_whitespace().find_map(map_value) else {
            continue;
        };
        if maps.contains_key(&id) {
            continue;
        }
        let named_rodata = bpftool_json(&["map", "show", "id", &id.to_string()])
            .and_then(|m| m["name"].as_str().map(|n| n.ends_with(".rodata")))
            .unwrap_or(false);
        if !named_rodata {
            continue;
        }
        let dump = bpftool_json(&["map", "dump", "id", &id.to_string()]);
        let bytes = dump.and_then(|d| {
            d[0]["value"]
                .as_array()?
                .iter()
                .map(|b| {
                    b.as_str()
                        .and_then(|s| u8::from_str_radix(s.trim_start_matches("0x"), 16).ok())
                })
                .collect::<Option<Vec<u8>>>()
        });
        if let Some(bytes) = bytes {
            maps.insert(id, bytes);
        }
    }
    maps
}

/// `bpftool -j ARGS`, parsed.
fn bpftool_json(args: &[&str]) -> Option<serde_json::Value> {
    let out = Command::new("bpftool").arg("-j").args(args).output().ok()?;
    serde_json::from_slice(&out.stdout).ok()
}
