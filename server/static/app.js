// dangjian pages: organisation tree (lazy children, search, context menu), confirmations,
// the unit picker and ID-number autofill. No inline script anywhere: the CSP forbids it.
"use strict";

(function () {
  const PAGE_SIZE = 100;

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, v);
    }
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function getJSON(url) {
    const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!res.ok) throw new Error("HTTP " + res.status);
    return res.json();
  }

  // ---- organisation tree ----
  const tree = document.getElementById("tree");
  const menu = document.getElementById("tree-menu");

  function nodeItem(org) {
    const li = el("li", { "data-id": org.id, "data-child-count": org.child_count, "data-category": org.category, "data-status": org.status });
    const row = el("div", { class: "node" });
    const toggle = el("button", { type: "button", class: "toggle", "aria-label": "展开" }, org.child_count > 0 ? "▸" : "·");
    if (org.child_count === 0) toggle.disabled = true;
    const link = el("a", { href: "/orgs/" + org.id, class: "node-name", title: org.name }, org.short_name || org.name);
    const counts = el("span", { class: "counts" }, "党员 " + org.member_count + (org.child_count > 0 ? " · 下级 " + org.child_count : ""));
    row.append(toggle, link, counts);
    if (org.status === "revoked") row.append(el("span", { class: "badge" }, "已撤销"));
    li.append(row);
    if (tree && tree.dataset.current === org.id) row.classList.add("current");
    toggle.addEventListener("click", () => toggleNode(li));
    row.addEventListener("contextmenu", (ev) => showMenu(ev, org));
    return li;
  }

  async function loadChildren(li, page) {
    let ul = li.querySelector(":scope > ul");
    if (!ul) {
      ul = el("ul");
      li.append(ul);
    }
    const more = ul.querySelector(":scope > li.more");
    if (more) more.remove();
    const data = await getJSON("/api/v1/orgs/" + li.dataset.id + "/children?per_page=" + PAGE_SIZE + "&page=" + page);
    for (const org of data.items) ul.append(nodeItem(org));
    if (page * PAGE_SIZE < data.total) {
      const m = el("li", { class: "more" });
      const b = el("button", { type: "button", class: "link" }, "更多…（共 " + data.total + " 个）");
      b.addEventListener("click", () => loadChildren(li, page + 1));
      m.append(b);
      ul.append(m);
    }
    li.dataset.loaded = "1";
  }

  async function toggleNode(li, forceOpen) {
    const toggle = li.querySelector(":scope > .node > .toggle");
    if (!toggle || toggle.disabled) return;
    const open = li.classList.contains("open");
    if (open && !forceOpen) {
      li.classList.remove("open");
      toggle.textContent = "▸";
      return;
    }
    li.classList.add("open");
    toggle.textContent = "▾";
    if (!li.dataset.loaded) await loadChildren(li, 1);
  }

  async function initTree() {
    if (!tree) return;
    const rootId = tree.dataset.root;
    let root;
    try {
      root = await getJSON("/api/v1/orgs/" + rootId);
    } catch (e) {
      tree.append(el("li", { class: "muted" }, "机构树加载失败，请刷新页面"));
      return;
    }
    const li = nodeItem(root);
    tree.append(li);
    await toggleNode(li, true);
    // Open the path down to the current organisation, following the breadcrumbs.
    const chain = Array.from(document.querySelectorAll("nav.crumbs a[href^='/orgs/']"))
      .map((a) => a.getAttribute("href").split("/")[2]);
    for (const id of chain.slice(1)) {
      const node = tree.querySelector("li[data-id='" + CSS.escape(id) + "']");
      if (!node) break;
      await toggleNode(node, true);
    }
    const current = tree.querySelector("li[data-id='" + CSS.escape(tree.dataset.current || "") + "'] > .node");
    if (current) current.scrollIntoView({ block: "nearest" });
  }

  function showMenu(ev, org) {
    if (!menu) return;
    ev.preventDefault();
    menu.textContent = "";
    const branch = ["631", "632", "9"].includes(org.category);
    const active = org.status === "active";
    const items = [["查看", "/orgs/" + org.id], ["党员信息", "/orgs/" + org.id + "?tab=members"], ["单位信息", "/orgs/" + org.id + "?tab=units"]];
    if (active && !branch) items.push(["组织新增", "/orgs/" + org.id + "/new"]);
    if (active && branch) items.push(["新增党员", "/orgs/" + org.id + "/members/new"]);
    if (active) items.push(["编辑", "/orgs/" + org.id + "/edit"]);
    if (active && org.id !== tree.dataset.root) {
      items.push(["更改组织类别", "/orgs/" + org.id + "/category"]);
      items.push(["撤销", "/orgs/" + org.id + "/revoke"]);
    }
    if (org.id !== tree.dataset.root) items.push(["删除", "/orgs/" + org.id + "/delete"]);
    for (const [text, href] of items) {
      const li = el("li");
      li.append(el("a", { href: href }, text));
      menu.append(li);
    }
    // At the pointer (the menu is fixed: viewport coordinates, whatever the panel's scroll),
    // moved back inside the window when it would overflow the right or bottom edge.
    menu.hidden = false;
    const w = menu.offsetWidth, h = menu.offsetHeight;
    const x = Math.max(0, Math.min(ev.clientX, window.innerWidth - w - 2));
    const y = Math.max(0, Math.min(ev.clientY, window.innerHeight - h - 2));
    menu.style.left = x + "px";
    menu.style.top = y + "px";
  }

  document.addEventListener("click", (ev) => {
    if (menu && !menu.hidden && !menu.contains(ev.target)) menu.hidden = true;
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && menu) menu.hidden = true;
  });
  // The menu is fixed at the pointer: when the page or the tree scrolls it would drift from its
  // node, so it closes.
  document.addEventListener("scroll", () => {
    if (menu) menu.hidden = true;
  }, true);

  // ---- search boxes with results lists ----
  function searchBox(input, list, urlFor, render) {
    if (!input || !list) return;
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      const q = input.value.trim();
      if (!q) {
        list.hidden = true;
        list.textContent = "";
        return;
      }
      timer = setTimeout(async () => {
        try {
          const data = await getJSON(urlFor(q));
          const items = Array.isArray(data) ? data : data.items;
          list.textContent = "";
          if (items.length === 0) list.append(el("li", { class: "muted" }, "没有找到"));
          for (const item of items) list.append(render(item));
          list.hidden = false;
        } catch (e) {
          list.hidden = true;
        }
      }, 250);
    });
  }

  searchBox(
    document.getElementById("tree-search"),
    document.getElementById("tree-search-results"),
    (q) => "/api/v1/orgs?q=" + encodeURIComponent(q),
    (org) => {
      const li = el("li");
      li.append(el("a", { href: "/orgs/" + org.id }, org.name));
      return li;
    }
  );

  // ---- unit picker (organisation forms) ----
  const chosen = document.getElementById("chosen-units");
  function addUnit(unit) {
    if (!chosen || chosen.querySelector("input[value='" + CSS.escape(unit.id) + "']")) return;
    const li = el("li");
    li.append(el("input", { type: "hidden", name: "unit_ids", value: unit.id }));
    const label = el("label");
    const radio = el("input", { type: "radio", name: "default_unit_id", value: unit.id });
    if (!chosen.querySelector("input[type=radio]")) radio.checked = true;
    label.append(radio, document.createTextNode("主要单位"));
    const remove = el("button", { type: "button", class: "link remove-unit" }, "移除");
    li.append(label, el("span", {}, unit.name + "（" + unit.credit_code + "）"), remove);
    chosen.append(li);
  }
  if (chosen) {
    chosen.addEventListener("click", (ev) => {
      if (ev.target.classList.contains("remove-unit")) ev.target.closest("li").remove();
    });
  }
  const unitResults = document.getElementById("unit-search-results");
  searchBox(
    document.getElementById("unit-search"),
    unitResults,
    (q) => "/api/v1/units?per_page=20&q=" + encodeURIComponent(q),
    (unit) => {
      const li = el("li");
      const b = el("button", { type: "button", class: "link" }, unit.name + "（" + unit.credit_code + "）" + (unit.linked_orgs.length ? " · 已关联" : ""));
      b.addEventListener("click", () => {
        addUnit(unit);
        unitResults.hidden = true;
      });
      li.append(b);
      return li;
    }
  );

  // ---- unit mode: the picker only where units are chosen; a new unit made in a dialog ----
  const modeRadios = document.querySelectorAll("input[name=unit_mode]");
  const picker = document.querySelector(".unit-picker");
  function syncPicker() {
    const checked = document.querySelector("input[name=unit_mode]:checked");
    if (picker) picker.hidden = !!checked && checked.value === "same_as_parent";
  }
  modeRadios.forEach((r) => r.addEventListener("change", syncPicker));
  syncPicker();

  const unitDialog = document.getElementById("new-unit-dialog");
  if (unitDialog && typeof unitDialog.showModal === "function") {
    const q = (id) => document.getElementById(id);
    const inputs = unitDialog.querySelectorAll("[data-field]");
    function showErrors(list, general) {
      for (const i of inputs) {
        const slot = q(i.id + "-error");
        const e = list.find((x) => x.field === i.dataset.field);
        slot.hidden = !e;
        slot.textContent = e ? e.message : "";
        i.closest(".field").classList.toggle("has-error", !!e);
        if (e) i.setAttribute("aria-invalid", "true"); else i.removeAttribute("aria-invalid");
      }
      const banner = q("nu-errors");
      banner.hidden = !general;
      banner.textContent = general || "";
      const first = unitDialog.querySelector("[aria-invalid=true]");
      if (first) first.focus();
    }
    q("new-unit").addEventListener("click", () => {
      showErrors([], "");
      q("nu-credit-code-check").textContent = "";
      unitDialog.showModal();
      q("nu-name").focus();
    });
    q("nu-cancel").addEventListener("click", () => unitDialog.close());
    // The credit code is checked as it is typed, by the server's own rule.
    let timer = null;
    const credit = q("nu-credit-code");
    const note = q("nu-credit-code-check");
    credit.addEventListener("input", () => {
      clearTimeout(timer);
      const v = credit.value.trim();
      note.textContent = "";
      note.className = "check-note";
      if (v.length < 18) {
        if (v.length > 0) note.textContent = "已输入 " + v.length + " 位，共18位";
        return;
      }
      timer = setTimeout(async () => {
        try {
          const r = await getJSON("/api/v1/units/credit-code?code=" + encodeURIComponent(v));
          if (credit.value.trim() !== v) return;
          const ok = r.valid && !r.taken;
          note.textContent = ok ? "校验通过" : r.message;
          note.className = "check-note " + (ok ? "ok" : "bad");
        } catch (e) {
          note.textContent = "";
        }
      }, 200);
    });
    q("nu-save").addEventListener("click", async () => {
      const mode = document.querySelector("input[name=unit_mode]:checked");
      const body = {
        owner_org_id: unitDialog.dataset.owner,
        name: q("nu-name").value,
        credit_code: q("nu-credit-code").value,
        category: q("nu-category").value,
        party_org_situation: mode && mode.value === "joint" ? 2 : 1,
      };
      try {
        const res = await fetch("/api/v1/units", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": unitDialog.dataset.csrf },
          body: JSON.stringify(body),
        });
        const data = await res.json();
        if (res.status === 201) {
          addUnit(data);
          unitDialog.close();
          return;
        }
        const list = (data.errors || []).filter((e) => unitDialog.querySelector("[data-field='" + e.field + "']"));
        showErrors(list, list.length ? "" : (data.error && data.error.message) || "保存失败");
      } catch (e) {
        showErrors([], "保存失败，请检查网络后重试");
      }
    });
  }

  // ---- category → level field ----
  const category = document.querySelector("#org-form #category, #category-form #category");
  const levelField = document.querySelector(".level-field");
  function syncLevel() {
    if (category && levelField) levelField.hidden = category.value !== "1";
  }
  if (category) category.addEventListener("change", syncLevel);
  syncLevel();

  // ---- confirmations and "back" links ----
  // Required fields (their label carries the red *) that are empty, each marked beside the
  // field as the server would; true when there was none.
  function requiredFilled(form) {
    let first = null;
    for (const field of form.querySelectorAll(".field")) {
      const label = field.querySelector("label");
      const input = field.querySelector("input, select, textarea");
      if (!label || !input || !label.querySelector(".req")) continue;
      const old = field.querySelector(".field-error.client");
      if (old) old.remove();
      if (input.value.trim() !== "") continue;
      const name = label.textContent.replace("*", "").trim();
      field.classList.add("has-error");
      input.setAttribute("aria-invalid", "true");
      field.appendChild(el("div", { class: "field-error client", role: "alert" }, "请填写" + name));
      if (!first) first = input;
    }
    if (first) {
      first.scrollIntoView({ block: "center" });
      first.focus({ preventScroll: true });
    }
    return first === null;
  }

  document.addEventListener("click", (ev) => {
    const t = ev.target.closest("[data-confirm]");
    if (t && t.hasAttribute("data-check-required") && t.form && !requiredFilled(t.form)) {
      ev.preventDefault();
      return;
    }
    if (t && !window.confirm(t.dataset.confirm)) ev.preventDefault();
    const back = ev.target.closest("[data-back]");
    if (back && window.history.length > 1) {
      ev.preventDefault();
      window.history.back();
    }
  });

  // ---- members: ID number → sex and birth date; page size submits ----
  const idInput = document.querySelector("#member-form #id_number");
  if (idInput && !idInput.readOnly) {
    idInput.addEventListener("input", () => {
      const v = idInput.value.trim().toUpperCase();
      const note = document.getElementById("id-hint");
      if (!/^\d{17}[\dX]$/.test(v) || v === "000000000000000000") return;
      const y = v.slice(6, 10), m = v.slice(10, 12), d = v.slice(12, 14);
      const date = new Date(y + "-" + m + "-" + d + "T00:00:00Z");
      if (isNaN(date.getTime()) || date.getUTCDate() !== Number(d)) return;
      const birth = document.querySelector("#member-form #birth_date");
      const sex = document.querySelector("#member-form #sex");
      if (birth) birth.value = y + "-" + m + "-" + d;
      if (sex) sex.value = Number(v[16]) % 2 === 1 ? "male" : "female";
      if (note) note.textContent = "已根据身份证号填写性别和出生日期";
    });
  }
  const perPage = document.querySelector("#member-search select[name=per_page]");
  if (perPage) perPage.addEventListener("change", () => perPage.form.submit());

  // ---- form errors: every field at fault is listed; focus and scroll to the first ----
  const problems = document.querySelector(".form-problems[data-first]");
  function focusField(name) {
    const f = document.getElementById(name) ||
      document.querySelector("[name='" + CSS.escape(name) + "']") ||
      document.querySelector(".field-error[data-field='" + CSS.escape(name) + "']");
    if (!f) return;
    f.scrollIntoView({ block: "center" });
    if (typeof f.focus === "function") f.focus({ preventScroll: true });
  }
  if (problems) {
    focusField(problems.dataset.first);
    problems.addEventListener("click", (ev) => {
      const a = ev.target.closest("a[data-focus]");
      if (!a) return;
      ev.preventDefault();
      focusField(a.dataset.focus);
    });
  }

  initTree();
})();

// ==== Forms that keep their work, dates as YYYY-MM-DD, printing (issue 12, items 2, 8, 9) ====
// A separate block so that the sections above can change without touching it.
(function () {
  // ---- dates: text fields taking YYYY-MM-DD whatever the browser's locale ----
  // Accepts 2024-05-01, 2024-5-1, 2024年5月1日, 2024.5.1, 2024/5/1, 20240501 (full-width digits
  // too) and writes YYYY-MM-DD back; anything else is left as typed for the server to name.
  function normaliseDate(raw) {
    const s = raw.replace(/[０-９]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0)).trim();
    const m = /^(\d{4})\s*[-./年]\s*(\d{1,2})\s*[-./月]\s*(\d{1,2})\s*日?$/.exec(s) || /^(\d{4})(\d{2})(\d{2})$/.exec(s);
    if (!m) return s;
    const y = Number(m[1]), mo = Number(m[2]), d = Number(m[3]);
    const t = new Date(Date.UTC(y, mo - 1, d));
    if (t.getUTCFullYear() !== y || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d) return s;
    return m[1] + "-" + String(mo).padStart(2, "0") + "-" + String(d).padStart(2, "0");
  }
  window.dangjianNormaliseDate = normaliseDate;

  function setDate(input, value) {
    if (input.value === value) return;
    input.value = value;
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  for (const input of document.querySelectorAll("input[data-date]")) {
    input.addEventListener("blur", () => setDate(input, normaliseDate(input.value)));
    if (input.disabled || input.readOnly) continue;
    // A small picker: the browser's own calendar on a hidden date input, whose value is ISO.
    const wrap = document.createElement("span");
    wrap.className = "date-wrap";
    input.parentNode.insertBefore(wrap, input);
    wrap.append(input);
    const native = document.createElement("input");
    native.type = "date";
    native.className = "date-native";
    native.tabIndex = -1;
    native.setAttribute("aria-hidden", "true");
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "date-pick";
    pick.title = "选择日期";
    pick.setAttribute("aria-label", "选择日期");
    pick.textContent = "日历";
    wrap.append(pick, native);
    pick.addEventListener("click", () => {
      const v = normaliseDate(input.value);
      native.value = /^\d{4}-\d{2}-\d{2}$/.test(v) ? v : "";
      try {
        native.showPicker();
      } catch (e) {
        input.focus();
      }
    });
    native.addEventListener("change", () => {
      if (native.value) setDate(input, native.value);
    });
  }
  document.addEventListener("submit", (ev) => {
    for (const input of ev.target.querySelectorAll("input[data-date]")) input.value = normaliseDate(input.value);
  }, true);

  // ---- drafts: a form's unsaved input survives a refresh; leaving it warns first ----
  // Kept in sessionStorage (this tab only), keyed by the form's action. Never kept: passwords,
  // PINs, one-time codes, CSRF and other hidden fields.
  const PREFIX = "dangjian.draft:";
  const SECRET_NAMES = new Set(["csrf", "login_token", "code", "pin", "otp", "sms_code", "activation_code", "secret", "uri"]);
  const SKIP_TYPES = new Set(["password", "hidden", "file", "submit", "button", "reset", "image"]);

  function draftable(e) {
    if (!e.name || e.disabled) return false;
    if (SKIP_TYPES.has((e.type || "").toLowerCase())) return false;
    if (SECRET_NAMES.has(e.name) || /password|passwd|token|csrf|otp|(^|_)pin$/i.test(e.name)) return false;
    return !e.closest("[data-no-draft]");
  }

  function keyed(form) {
    const seen = {};
    return Array.from(form.elements).filter(draftable).map((e) => {
      if (e.type === "checkbox" || e.type === "radio") return [e.name + "=" + e.value, e];
      seen[e.name] = (seen[e.name] || 0) + 1;
      return [e.name + "#" + seen[e.name], e];
    });
  }

  function valuesOf(form) {
    const o = {};
    for (const [k, e] of keyed(form)) o[k] = e.type === "checkbox" || e.type === "radio" ? e.checked : e.value;
    return o;
  }

  function apply(form, values) {
    for (const [k, e] of keyed(form)) {
      if (!(k in values)) continue;
      if (e.type === "checkbox" || e.type === "radio") e.checked = values[k];
      else e.value = values[k];
      if (e.tagName === "SELECT" || e.type === "radio" || e.type === "checkbox") e.dispatchEvent(new Event("change", { bubbles: true }));
    }
  }

  function same(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }

  function read(key) {
    try {
      return JSON.parse(sessionStorage.getItem(key) || "null");
    } catch (e) {
      return null;
    }
  }

  function write(key, value) {
    try {
      if (value === null) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, JSON.stringify(value));
    } catch (e) {
      /* storage full or disabled: drafts are a convenience */
    }
  }

  function keyOf(form) {
    const url = new URL(form.getAttribute("action") || location.href, location.href);
    return PREFIX + url.pathname + url.search;
  }

  function fmtTime(ms) {
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes());
  }

  const forms = [];
  const draftForms = Array.from(document.querySelectorAll("form.form[method=post]"))
    .filter((f) => !f.matches("#login-form, [data-no-draft]") && keyed(f).length > 0);
  const here = new Set(draftForms.map(keyOf));

  // A form sent from this tab: when its page is not here, the save went through (clear the
  // draft) unless this is an error page with a way back (keep it for the return).
  const errorPage = !!document.querySelector("a[data-back]") && !!document.querySelector(".alert-error");
  for (let i = sessionStorage.length - 1; i >= 0; i--) {
    const key = sessionStorage.key(i);
    if (!key || !key.startsWith(PREFIX) || here.has(key)) continue;
    const d = read(key);
    if (d && d.submitted) write(key, errorPage ? { values: d.values, at: d.at } : null);
  }

  for (const form of draftForms) {
    const key = keyOf(form);
    const initial = valuesOf(form);
    const entry = { form, submitting: false, unsaved: false };
    let draft = read(key);
    if (draft && draft.submitted) {
      // The server sent the form back (a refused save) with what was typed: that wins; the
      // draft now follows it.
      entry.unsaved = !!form.querySelector(".field-error") || !!document.querySelector(".alert-error");
      draft = null;
      write(key, entry.unsaved ? { values: initial, at: Date.now() } : null);
    }
    if (draft && draft.values && !same(draft.values, initial)) {
      apply(form, draft.values);
      const note = document.createElement("div");
      note.className = "alert alert-info draft-note";
      note.setAttribute("role", "status");
      note.append(document.createTextNode("已恢复未保存的内容（" + fmtTime(draft.at || Date.now()) + " 填写，仅保存在本浏览器标签页中）"));
      const discard = document.createElement("button");
      discard.type = "button";
      discard.className = "link draft-discard";
      discard.textContent = "放弃这些内容，恢复原样";
      discard.addEventListener("click", () => {
        apply(form, initial);
        write(key, null);
        note.remove();
      });
      note.append(discard);
      form.parentNode.insertBefore(note, form);
    }
    entry.initial = initial;
    entry.key = key;
    entry.dirty = () => entry.unsaved || !same(valuesOf(form), entry.initial);
    const save = () => {
      if (entry.submitting) return;
      write(key, entry.dirty() ? { values: valuesOf(form), at: Date.now() } : null);
    };
    entry.save = save;
    form.addEventListener("input", save);
    form.addEventListener("change", save);
    form.addEventListener("submit", (ev) => {
      entry.submitting = true;
      write(key, { values: valuesOf(form), at: Date.now(), submitted: true });
      // Another handler may stop the submission (a confirmation answered 取消).
      setTimeout(() => {
        if (ev.defaultPrevented) {
          entry.submitting = false;
          save();
        }
      }, 0);
    });
    // 取消 and other links of the form's buttons row: ask before dropping typed input.
    for (const a of form.querySelectorAll(".actions a[href]")) {
      a.addEventListener("click", (ev) => {
        if (entry.dirty() && !window.confirm("填写的内容尚未保存，确定放弃吗？")) {
          ev.preventDefault();
          return;
        }
        entry.submitting = true;
        write(key, null);
      });
    }
    forms.push(entry);
  }

  window.addEventListener("pagehide", () => {
    for (const f of forms) f.save();
  });
  // Back from an error page out of the browser's page cache: the form is live again.
  window.addEventListener("pageshow", (ev) => {
    if (!ev.persisted) return;
    for (const f of forms) {
      if (f.submitting && read(f.key) === null) {
        // Saved (the next page cleared the draft): what the form shows is what was saved.
        f.initial = valuesOf(f.form);
        f.unsaved = false;
      }
      f.submitting = false;
      f.save();
    }
  });
  window.addEventListener("beforeunload", (ev) => {
    if (forms.some((f) => !f.submitting && f.dirty())) {
      ev.preventDefault();
      ev.returnValue = "";
    }
  });
  // Signing out leaves no drafts behind in the tab.
  for (const f of document.querySelectorAll("form[action='/logout'], form[action='/logout/all']")) {
    f.addEventListener("submit", () => {
      for (let i = sessionStorage.length - 1; i >= 0; i--) {
        const key = sessionStorage.key(i);
        if (key && key.startsWith(PREFIX)) sessionStorage.removeItem(key);
      }
      for (const e of forms) e.submitting = true;
    });
  }

  // ---- printing: the print view of a list opens the print dialog; the header's time ----
  window.addEventListener("beforeprint", () => {
    // Beijing time, as the server wrote it at page load.
    const t = document.getElementById("print-time");
    const b = new Date(Date.now() + 8 * 3600 * 1000);
    const p = (n) => String(n).padStart(2, "0");
    if (t) t.textContent = b.getUTCFullYear() + "-" + p(b.getUTCMonth() + 1) + "-" + p(b.getUTCDate()) + " " + p(b.getUTCHours()) + ":" + p(b.getUTCMinutes());
  });
  // The 打印 button opens the print view with #autoprint: print as soon as it has loaded (the
  // view without it is left alone, to look at or to save).
  if (document.querySelector("#print-list") && location.hash === "#autoprint") {
    window.addEventListener("load", () => setTimeout(() => {
      document.documentElement.dataset.printRequested = "1";
      window.print();
    }, 300));
  }
})();

// The count of applications waiting for the admin's decision, on the 维护审批 link.
(function () {
  "use strict";
  const badge = document.getElementById("approvals-badge");
  if (!badge) return;
  fetch("/api/v1/approvals?state=pending&per_page=1", { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : null))
    .then((page) => {
      if (page && page.total > 0) {
        badge.textContent = String(page.total);
        badge.hidden = false;
        badge.title = page.total + " 项待审批";
      }
    })
    .catch(() => {});
})();

// Documents 相关资料: a file chosen is uploaded at once (POST /api/v1/attachments with the
// page's CSRF token) and carried by the form as a hidden `attachments` id.
(function () {
  "use strict";
  document.querySelectorAll("input[type=file][data-upload]").forEach((input) => {
    input.addEventListener("change", async () => {
      const form = input.form;
      const csrf = form && form.querySelector("input[name=csrf]");
      const list = input.parentElement.querySelector("ul.uploaded");
      for (const file of Array.from(input.files)) {
        const item = document.createElement("li");
        item.textContent = file.name + "（上传中…）";
        list.appendChild(item);
        const body = new FormData();
        body.append("file", file);
        body.append("kind", input.dataset.upload);
        body.append("org_id", input.dataset.org);
        try {
          const res = await fetch("/api/v1/attachments", {
            method: "POST",
            body,
            credentials: "same-origin",
            headers: csrf ? { "X-CSRF-Token": csrf.value } : {},
          });
          const answer = await res.json().catch(() => null);
          if (!res.ok || !answer || !answer.id) {
            const why = answer && answer.error ? answer.error.message : "上传失败，请重试";
            item.textContent = file.name + "：" + why;
            item.className = "upload-error";
            continue;
          }
          item.textContent = file.name + "（已上传）";
          item.className = "uploaded-file";
          const hidden = document.createElement("input");
          hidden.type = "hidden";
          hidden.name = "attachments";
          hidden.value = answer.id;
          item.appendChild(hidden);
        } catch (e) {
          item.textContent = file.name + "：上传失败，请检查网络后重试";
          item.className = "upload-error";
        }
      }
      input.value = "";
    });
  });

  // ---- comprehensive query 综合查询: "+" / "−" in place, re-render on a field or mode change ----
  const queryForm = document.getElementById("query-form");
  if (queryForm) {
    const rowsBox = document.getElementById("query-rows");
    const template = document.getElementById("query-row-template");
    const renumber = () => {
      rowsBox.querySelectorAll("[data-query-row]").forEach((row, i) => {
        row.querySelectorAll("[name]").forEach((e) => {
          e.name = e.name.replace(/^c\d+\./, "c" + i + ".");
          if (e.id) e.id = e.id.replace(/^c\d+-/, "c" + i + "-");
        });
        const rm = row.querySelector("[data-query-remove]");
        if (rm) rm.value = String(i);
      });
    };
    queryForm.addEventListener("click", (ev) => {
      const add = ev.target.closest("[data-query-add]");
      if (add && template) {
        ev.preventDefault();
        rowsBox.appendChild(template.content.cloneNode(true));
        renumber();
        return;
      }
      const rm = ev.target.closest("[data-query-remove]");
      if (rm) {
        ev.preventDefault();
        rm.closest("[data-query-row]").remove();
        renumber();
      }
    });
    queryForm.addEventListener("change", (ev) => {
      if (ev.target.matches("[data-query-refresh]")) {
        const flag = document.createElement("input");
        flag.type = "hidden";
        flag.name = "refresh";
        flag.value = "1";
        queryForm.appendChild(flag);
        queryForm.submit();
      } else if (ev.target.matches("[data-autosubmit]")) {
        queryForm.submit();
      }
    });
  }
})();

// ---- member import (issue 16): while a summary sheet is being validated, the page reloads
// to show the progress, and stops once the report is there.
(function () {
  if (document.querySelector("[data-import-progress]")) {
    setTimeout(function () { window.location.reload(); }, 1500);
  }
})();

// Background jobs: a progress bar (`div.job[data-job]`) follows its job through
// GET /api/v1/jobs/{id} and reloads the page when the job has ended, so the page shows the result.
(function () {
  "use strict";
  document.querySelectorAll("div.job[data-job][data-state=running]").forEach((box) => {
    const bar = box.querySelector("progress");
    const count = box.querySelector(".job-count");
    const tick = async () => {
      let job = null;
      try {
        const res = await fetch("/api/v1/jobs/" + encodeURIComponent(box.dataset.job), {
          credentials: "same-origin",
        });
        job = res.ok ? await res.json() : null;
      } catch (e) {
        job = null;
      }
      if (!job) {
        count.textContent = "无法获取进度，请刷新页面";
        return;
      }
      if (job.total > 0) {
        bar.max = job.total;
        bar.value = job.done;
        bar.textContent = Math.floor((job.done * 100) / job.total) + "%";
        count.textContent = "已完成 " + job.done + " / " + job.total;
      }
      if (job.state !== "running") {
        box.dataset.state = job.state;
        window.location.reload();
        return;
      }
      setTimeout(tick, 500);
    };
    setTimeout(tick, 300);
  });
})();

// ==== Statistics and collection forms (issue 16): a button that prints the page as it is ====
(() => {
  document.querySelectorAll("[data-print]").forEach((b) => {
    b.addEventListener("click", () => window.print());
  });
})();
