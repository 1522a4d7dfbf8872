/* Tuan's Mini App storefront: plain JS, no framework, no build step.
   Every call sends Telegram's initData (Authorization: tma …); the server decides who the
   person is. Views: #shops, #shop/<code>, #deal/<code>/<id>, #owner/<code>/<id>, #orders. */
(function () {
  "use strict";
  var tg = (window.Telegram && window.Telegram.WebApp) || null;
  var initData = tg ? tg.initData || "" : "";
  var L = {};
  var view = document.getElementById("view");
  var title = document.getElementById("title");
  var back = document.getElementById("back");
  var mine = document.getElementById("mine");
  var toastTimer = null;

  function t(key, values) {
    var text = L[key] || key;
    Object.keys(values || {}).forEach(function (k) {
      text = text.split("{" + k + "}").join(String(values[k]));
    });
    return text;
  }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function toast(text) {
    var box = document.getElementById("toast");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.hidden = true; }, 3500);
  }

  function api(path, body) {
    var options = { headers: { Authorization: "tma " + initData } };
    if (body !== undefined) {
      options.method = "POST";
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch("api/" + path, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(data.error || t("error"));
          error.status = response.status;
          throw error;
        }
        return data;
      });
    });
  }

  function failed(error) {
    toast(error.message || t("error"));
    if (tg && tg.HapticFeedback) tg.HapticFeedback.notificationOccurred("error");
  }

  function photo(code, deal, cls) {
    var img = el("img", { class: cls, alt: "" });
    fetch("api/shop/" + code + "/deals/" + deal.id + "/photo", {
      headers: { Authorization: "tma " + initData },
    }).then(function (r) { return r.ok ? r.blob() : null; }).then(function (blob) {
      if (blob) img.src = URL.createObjectURL(blob);
      else img.remove();
    }).catch(function () { img.remove(); });
    return img;
  }

  function progress(deal) {
    var parts = [];
    if (deal.min_kind && deal.min_value) {
      var have = deal.min_kind === "units" ? deal.total_qty : deal.participants;
      var share = Math.min(100, Math.round((100 * have) / deal.min_value));
      parts.push(el("div", { class: "bar" }, el("i", { style: "width:" + share + "%" })));
      parts.push(el("div", { class: "hint" },
        t("minimum") + " " + have + "/" + deal.min_value + " · " +
        (deal.missing ? t("to_go", { n: deal.missing }) : t("reached"))));
    }
    var facts = [];
    if (deal.stock_left !== null && deal.stock_left !== undefined)
      facts.push(deal.stock_left > 0 ? t("stock_left", { n: deal.stock_left }) : t("sold_out"));
    facts.push(t("signed_up") + " " + deal.total_qty);
    if (deal.time_left) facts.push(deal.time_left);
    parts.push(el("div", { class: "hint" }, facts.join(" · ")));
    return parts;
  }

  function tags(deal) {
    var box = el("div");
    if (deal.status === "paused") box.appendChild(el("span", { class: "tag", text: t("paused") }));
    if (deal.team) box.appendChild(el("span", { class: "tag",
      text: "👥 " + t("team_of", { price: deal.team.price, size: deal.team.size }) }));
    if (deal.bargain) box.appendChild(el("span", { class: "tag", text: "✂️ " + t("bargain") }));
    if (deal.mine && deal.mine.quantity)
      box.appendChild(el("span", { class: "tag", text: t("you_have") + " ×" + deal.mine.quantity }));
    return box;
  }

  function priceLine(deal) {
    return el("div", null, el("span", { class: "price", text: deal.price }),
      deal.tier_reached ? el("span", { class: "strike", text: deal.unit_price }) : null);
  }

  function setHeader(text, backTo) {
    title.textContent = text;
    document.title = text;
    back.hidden = !backTo;
    back.onclick = backTo ? function () { location.hash = backTo; } : null;
    if (tg && tg.BackButton) {
      if (backTo) tg.BackButton.show(); else tg.BackButton.hide();
    }
    currentBack = backTo;
  }
  var currentBack = null;
  if (tg && tg.BackButton && tg.BackButton.onClick)
    tg.BackButton.onClick(function () { if (currentBack) location.hash = currentBack; });

  function show() {
    view.textContent = "";
    for (var i = 0; i < arguments.length; i++) if (arguments[i]) view.appendChild(arguments[i]);
  }

  // ---------------------------------------------------------------- views

  function shops(me) {
    setHeader(t("shops"), null);
    if (!me.shops.length) return show(el("p", { class: "empty", text: t("no_shops") }));
    var list = el("div");
    me.shops.forEach(function (s) {
      list.appendChild(el("div", { class: "card link", onclick: function () { location.hash = "shop/" + s.code; } },
        el("h2", { text: s.title })));
    });
    show(list);
  }

  function shop(code) {
    return api("shop/" + code).then(function (data) {
      setHeader(data.group.title, state.me.shops.length > 1 ? "shops" : null);
      var list = el("div", { id: "deals" });
      if (!data.deals.length) list.appendChild(el("p", { class: "empty", text: t("no_deals") }));
      data.deals.forEach(function (deal) {
        var card = el("div", { class: "card link deal", "data-deal": deal.id,
          onclick: function () { location.hash = "deal/" + code + "/" + deal.id; } },
          el("div", { class: "row" },
            deal.photo ? photo(code, deal, "thumb") : null,
            el("div", { style: "flex:1;min-width:0" },
              el("h2", { text: deal.code + " · " + deal.title }), priceLine(deal), tags(deal))));
        progress(deal).forEach(function (p) { card.appendChild(p); });
        list.appendChild(card);
      });
      var coupons = null;
      if (data.coupons.length) {
        coupons = el("div", { class: "card" }, el("h3", { text: "🎟 " + t("coupons") }));
        data.coupons.forEach(function (c) {
          coupons.appendChild(el("button", { class: "alt", type: "button", text: c.label,
            onclick: function (e) {
              e.target.disabled = true;
              api("shop/" + code + "/coupons/" + c.id + "/claim", {}).then(function () {
                toast("✓ " + t("done"));
              }).catch(failed).then(function () { e.target.disabled = false; });
            } }));
        });
      }
      show(list, coupons);
    });
  }

  function deal(code, id) {
    return api("shop/" + code + "/deals/" + id).then(function (d) {
      setHeader(d.code + " · " + d.title, "shop/" + code);
      var held = d.mine ? d.mine.quantity : 0;
      var most = d.limit;
      if (d.stock_left !== null && d.stock_left !== undefined) most = Math.min(most, d.stock_left + held);
      var qty = Math.max(1, Math.min(held || 1, most || 1));
      var out = el("output", { id: "qty", text: String(qty) });
      function step(by) {
        qty = Math.max(1, Math.min(most, qty + by));
        out.textContent = String(qty);
      }
      var blocks = [];
      if (d.photo) blocks.push(photo(code, d, "photo"));
      var head = el("div", { class: "card" }, priceLine(d), tags(d));
      progress(d).forEach(function (p) { head.appendChild(p); });
      head.appendChild(el("div", { class: "hint", text: t("closes") + " " + d.closes }));
      blocks.push(head);
      if (d.description || d.pickup_note)
        blocks.push(el("div", { class: "card" }, el("div", { text: d.description }),
          d.pickup_note ? el("div", { class: "hint", text: d.pickup_note }) : null));
      if (d.tiers.length) {
        var tiers = el("div", { class: "card" }, el("h3", { text: t("tiers") }));
        d.tiers.forEach(function (tier) {
          tiers.appendChild(el("div", null, t("units_from", { n: tier.units }) + " → " + tier.price));
        });
        if (d.next_tier) tiers.appendChild(el("div", { class: "hint",
          text: t("to_go", { n: d.next_tier.units }) + " → " + d.next_tier.price }));
        blocks.push(tiers);
      }
      var actions = el("div", { class: "card", id: "actions" });
      var canBuyAlone = d.status === "open" && !(d.team && d.team.only) && !(d.mine && d.mine.in_offer) &&
        !(d.mine && d.mine.paid);
      if (canBuyAlone && most > 0) {
        actions.appendChild(el("div", { class: "hint", text: t("quantity") }));
        actions.appendChild(el("div", { class: "qty" },
          el("button", { type: "button", id: "minus", "aria-label": "-", text: "−", onclick: function () { step(-1); } }),
          out,
          el("button", { type: "button", id: "plus", "aria-label": "+", text: "+", onclick: function () { step(1); } })));
        actions.appendChild(el("button", { class: "main", type: "button", id: "order",
          text: held ? t("change") : t("join"),
          onclick: function (e) { act(e.target, { action: "set", quantity: qty }); } }));
      }
      if (held && canBuyAlone)
        actions.appendChild(el("button", { class: "alt danger", type: "button", id: "cancel", text: t("cancel"),
          onclick: function (e) { act(e.target, { action: "cancel" }); } }));
      if (d.team && d.status === "open" && !held) {
        actions.appendChild(el("h3", { text: "👥 " + t("team_of", { price: d.team.price, size: d.team.size }) }));
        d.team.open.forEach(function (team) {
          actions.appendChild(el("button", { class: "alt", type: "button",
            text: t("join_team") + " (" + t("team_places", { members: team.members, size: team.size }) + ": " + team.names.join(", ") + ")",
            onclick: function (e) { teamAct(e.target, { action: "join", team: team.id }); } }));
        });
        actions.appendChild(el("button", { class: "alt", type: "button", text: t("start_team"),
          onclick: function (e) { teamAct(e.target, { action: "start" }); } }));
      }
      if (actions.childNodes.length) blocks.push(actions);
      var list = el("ol", { class: "signups", id: "signups" });
      d.signups.forEach(function (s) { list.appendChild(el("li", null, s.name + " ×" + s.quantity)); });
      blocks.push(el("div", { class: "card" }, el("h3", { text: t("signed_up") + " (" + d.total_qty + ")" }),
        d.signups.length ? list : el("div", { class: "hint", text: t("nobody") })));
      if (d.manages)
        blocks.push(el("button", { class: "alt", type: "button", id: "owner", text: t("orders_of_deal"),
          onclick: function () { location.hash = "owner/" + code + "/" + id; } }));
      show.apply(null, blocks);

      function done() {
        if (tg && tg.HapticFeedback) tg.HapticFeedback.notificationOccurred("success");
        toast("✓ " + t("done"));
        return deal(code, id);
      }
      function act(button, body) {
        button.disabled = true;
        api("shop/" + code + "/deals/" + id + "/order", body).then(done).catch(function (e) {
          failed(e); button.disabled = false;
        });
      }
      function teamAct(button, body) {
        button.disabled = true;
        api("shop/" + code + "/deals/" + id + "/team", body).then(done).catch(function (e) {
          failed(e); button.disabled = false;
        });
      }
    });
  }

  function owner(code, id) {
    return api("shop/" + code + "/deals/" + id + "/orders").then(function (data) {
      setHeader(data.title, "deal/" + code + "/" + id);
      var table = el("table", null, el("tr", null, el("th", { text: "#" }), el("th", { text: "" }),
        el("th", { text: "×" }), el("th", { text: t("pickup") }), el("th", { text: t("paid") })));
      data.orders.forEach(function (o, i) {
        table.appendChild(el("tr", null, el("td", { text: String(i + 1) }), el("td", { text: o.name }),
          el("td", { text: String(o.quantity) }), el("td", { text: o.pickup }), el("td", { text: o.paid })));
      });
      show(el("p", { class: "hint", text: t("owner_view") }),
        el("div", { class: "card" }, el("div", null, t("total_units") + ": " + data.units + " · " +
          t("total_people") + ": " + data.people),
          el("div", null, t("paid") + ": " + data.paid + " · " + t("owed") + ": " + data.owed)),
        el("div", { class: "card" }, table));
    });
  }

  function orders() {
    return api("orders").then(function (data) {
      setHeader(t("my_orders"), state.shop ? "shop/" + state.shop : (state.me.shops.length ? "shops" : null));
      if (!data.orders.length) return show(el("p", { class: "empty", text: t("no_orders") }));
      var list = el("div", { id: "orders" });
      data.orders.forEach(function (o) {
        var status = t("status_" + o.status);
        if (o.fulfilment && o.fulfilment !== "none") status += " · " + t("fulfil_" + o.fulfilment);
        var card = el("div", { class: "card order", "data-order": o.id },
          el("h2", { text: o.deal + " · " + o.title }),
          el("div", null, "×" + o.quantity + " · " + o.amount + " · " + status),
          o.paid ? el("div", { class: "hint", text: t("paid") + ": " + o.paid }) : null,
          o.owed ? el("div", { class: "hint", text: t("owed") + ": " + o.owed }) : null,
          o.refund ? el("div", { class: "hint", text: t("refund") + ": " + o.refund }) : null,
          o.pickup ? el("div", null, el("span", { class: "hint", text: t("pickup") + " " }),
            el("span", { class: "code", text: o.pickup })) : null);
        if (o.coupons.length) {
          var select = el("select", { "aria-label": t("use_coupon") },
            el("option", { value: "0", text: t("no_coupon") }));
          o.coupons.forEach(function (c) {
            select.appendChild(el("option", { value: String(c.claim), text: c.label, selected: c.claim === o.coupon }));
          });
          select.addEventListener("change", function () {
            api("orders/" + o.id + "/coupon", { claim: Number(select.value) }).then(orders).catch(failed);
          });
          card.appendChild(el("div", { class: "hint", text: t("use_coupon") }));
          card.appendChild(select);
        }
        if (o.payable)
          card.appendChild(el("button", { class: "main", type: "button", text: t("pay") + " " + (o.owed || ""),
            onclick: function (e) { pay(e.target, o.id); } }));
        list.appendChild(card);
      });
      show(list);
    });
  }

  function pay(button, orderId) {
    button.disabled = true;
    api("orders/" + orderId + "/invoice", {}).then(function (data) {
      if (tg && tg.openInvoice) tg.openInvoice(data.link, function () { orders(); });
      else location.href = data.link;
    }).catch(failed).then(function () { button.disabled = false; });
  }

  // ---------------------------------------------------------------- routing

  var state = { me: null, shop: null };

  function route() {
    document.getElementById("toast").hidden = true;
    var parts = (location.hash || "").replace(/^#/, "").split("/");
    mine.hidden = parts[0] === "orders";
    var shown;
    if (parts[0] === "shop" && parts[1]) { state.shop = parts[1]; shown = shop(parts[1]); }
    else if (parts[0] === "deal" && parts[2]) { state.shop = parts[1]; shown = deal(parts[1], parts[2]); }
    else if (parts[0] === "owner" && parts[2]) shown = owner(parts[1], parts[2]);
    else if (parts[0] === "orders") shown = orders();
    else if (parts[0] === "shops" || !state.me.start) shown = Promise.resolve(shops(state.me));
    else { location.replace("#shop/" + state.me.start); return; }
    window.scrollTo(0, 0);
    Promise.resolve(shown).catch(function (e) {
      show(el("p", { class: "empty", id: "problem", text: e.message || t("error") }));
    });
  }

  function start() {
    if (tg) { tg.ready(); if (tg.expand) tg.expand(); }
    api("me").then(function (me) {
      state.me = me;
      L = me.labels;
      document.documentElement.lang = me.language === "zh_Hans" ? "zh-Hans" : me.language;
      mine.textContent = t("my_orders");
      mine.hidden = false;
      mine.onclick = function () { location.hash = "orders"; };
      window.addEventListener("hashchange", route);
      route();
    }).catch(function (e) {
      title.textContent = "";
      show(el("p", { class: "empty", id: "problem", text: e.message || "Open this page from Telegram." }));
    });
  }

  start();
})();
