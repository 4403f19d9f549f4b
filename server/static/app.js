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

  // ---- category → level field ----
  const category = document.querySelector("#org-form #category, #category-form #category");
  const levelField = document.querySelector(".level-field");
  function syncLevel() {
    if (category && levelField) levelField.hidden = category.value !== "1";
  }
  if (category) category.addEventListener("change", syncLevel);
  syncLevel();

  // ---- confirmations and "back" links ----
  document.addEventListener("click", (ev) => {
    const t = ev.target.closest("[data-confirm]");
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

  initTree();
})();
