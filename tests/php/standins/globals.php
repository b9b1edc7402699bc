<?php
/**
 * Global stand-ins: CModule, CBitrixComponent, CMain ($APPLICATION), CUser ($USER), CEventLog and the
 * kernel functions the module calls. Sources: [B24 main/classes/general/module.php, component.php,
 * user.php], [R main/tools.php, currency/include.php], docs
 * https://dev.1c-bitrix.ru/api_help/main/reference/ceventlog/add.php (CEventLog::Add fields),
 * https://dev.1c-bitrix.ru/api_help/main/reference/cbitrixcomponent/startresultcache.php,
 * https://dev.1c-bitrix.ru/api_help/main/reference/cmain/includecomponent.php.
 */

use Bitrix\Main\ModuleManager;

/** [B24 main/classes/general/module.php]: untyped var properties (a typed stub would clash with modules). */
class CModule
{
    var $MODULE_NAME;
    var $MODULE_DESCRIPTION;
    var $MODULE_VERSION;
    var $MODULE_VERSION_DATE;
    var $MODULE_ID;
    var $MODULE_SORT = 10000;
    var $SHOW_SUPER_ADMIN_GROUP_RIGHTS;
    var $MODULE_GROUP_RIGHTS;
    var $PARTNER_NAME;
    var $PARTNER_URI;

    function InstallDB() { return false; }
    function UnInstallDB() {}
    function InstallEvents() {}
    function UnInstallEvents() {}
    function InstallFiles() {}
    function UnInstallFiles() {}
    function DoInstall() {}
    function DoUninstall() {}
    function IsInstalled() { return ModuleManager::isModuleInstalled($this->MODULE_ID); }
}

function RegisterModule($id) { ModuleManager::registerModule($id); }
function UnRegisterModule($id) { ModuleManager::unRegisterModule($id); }

/** [R main/tools.php] CopyDirFiles($from, $to, $ReWrite = true, $Recursive = false, ...): recursive only if asked. */
function CopyDirFiles($path_from, $path_to, $ReWrite = true, $Recursive = false, $bDeleteAfterCopy = false, $strExclude = '')
{
    if (is_file($path_from)) {
        @mkdir(dirname($path_to), 0777, true);
        return ($ReWrite || !file_exists($path_to)) ? copy($path_from, $path_to) : true;
    }
    @mkdir($path_to, 0777, true);
    foreach (scandir($path_from) as $name) {
        if ($name === '.' || $name === '..') {
            continue;
        }
        if (is_dir("$path_from/$name") && !$Recursive) {
            continue;
        }
        CopyDirFiles("$path_from/$name", "$path_to/$name", $ReWrite, $Recursive);
    }
    return true;
}

/** [R main/tools.php] DeleteDirFilesEx($path): a path relative to DOCUMENT_ROOT. */
function DeleteDirFilesEx($path)
{
    $full = $_SERVER['DOCUMENT_ROOT'] . $path;
    if (is_file($full) || is_link($full)) {
        return unlink($full);
    }
    if (!is_dir($full)) {
        return false;
    }
    foreach (scandir($full) as $name) {
        if ($name !== '.' && $name !== '..') {
            DeleteDirFilesEx($path . '/' . $name);
        }
    }
    return rmdir($full);
}

/**
 * [R currency/include.php]: CurrencyFormat($price, $currency) = CCurrencyLang::CurrencyFormat(..., true):
 * HTML in the currency's format. The stand-in has the ru site's RUB format: "125&nbsp;000,00&nbsp;&#8381;".
 */
function CurrencyFormat($price, $currency)
{
    $signs = ['RUB' => '&#8381;', 'USD' => '$', 'EUR' => '&euro;'];
    return number_format((float)$price, 2, ',', '&nbsp;') . '&nbsp;' . ($signs[$currency] ?? htmlspecialchars($currency));
}

function GetMessage($name, $aReplace = null)
{
    return (string)\Bitrix\Main\Localization\Loc::getMessage($name, $aReplace);
}

function htmlspecialcharsbx($string, $flags = ENT_COMPAT, $doubleEncode = true)
{
    return htmlspecialchars((string)$string, $flags, 'UTF-8', $doubleEncode);
}

function ShowError($strError, $cls = 'errortext')
{
    echo '<p><font class="' . $cls . '">' . $strError . '</font></p>';
}

/** CEventLog::Add(array $fields) - docs link above; the stand-in keeps the records for the tests. */
class CEventLog
{
    /** @var list<array<string, mixed>> */
    public static array $records = [];

    public static function Add($arFields)
    {
        self::$records[] = $arFields;
        return count(self::$records);
    }
}

/** [B24 main/classes/general/user.php]: GetID() a string, IsAuthorized(), GetUserGroupArray(). */
class CUser
{
    public function __construct(private int $id = 0, private array $groups = [2])
    {
    }

    public function GetID() { return $this->id > 0 ? (string)$this->id : null; }
    public function IsAuthorized() { return $this->id > 0; }
    public function GetUserGroupArray() { return $this->groups; }
}

/**
 * [B24 main/classes/general/component.php] CBitrixComponent: arParams / arResult; startResultCache()
 * is true = compute now, false = cache hit (arResult restored, cached HTML printed); the cache id holds
 * site, language, component, template, every non-~ parameter and $additionalCacheID;
 * includeComponentTemplate() renders, then endResultCache(). The stand-in caches in files under
 * $cacheDir; $lastCache tells the rig whether the last render was a hit.
 */
class CBitrixComponent
{
    public $arParams = [];
    public $arResult = [];
    protected $request;
    public static string $cacheDir = '/tmp/syncd-standin-cache';
    public static string $lastCache = '';
    private string $componentName = '';
    private string $templateName = '';
    private string $path = '';
    private ?string $cacheFile = null;

    public function __construct($component = null)
    {
        $this->request = new \Bitrix\Main\HttpRequest();
    }

    public function initComponent($componentName, $componentTemplate = '', $path = '')
    {
        $this->componentName = $componentName;
        $this->templateName = $componentTemplate === '' ? '.default' : $componentTemplate;
        $this->path = $path;
        return true;
    }

    public function onPrepareComponentParams($arParams) { return $arParams; }
    public function executeComponent() { return null; }
    public function getPath() { return $this->path; }

    public function __prepareComponentParams(&$arParams)
    {
        foreach ($arParams as $k => $v) {
            if ($k[0] !== '~') {
                $arParams['~' . $k] = $v;
                if (is_string($v) && preg_match('/[;&<>"]/', $v)) {
                    $arParams[$k] = htmlspecialcharsbx($v);
                }
            }
        }
        $type = $arParams['CACHE_TYPE'] ?? 'A';
        $arParams['CACHE_TYPE'] = in_array($type, ['Y', 'N'], true) ? $type : 'A';
    }

    final public function startResultCache($cacheTime = false, $additionalCacheID = false, $cachePath = false)
    {
        $time = $cacheTime === false ? (int)($this->arParams['CACHE_TIME'] ?? 0) : (int)$cacheTime;
        if ($this->arParams['CACHE_TYPE'] === 'N' || $time <= 0) {
            self::$lastCache = 'off';
            return true;
        }
        $params = array_filter($this->arParams, static fn($k) => $k[0] !== '~', ARRAY_FILTER_USE_KEY);
        $id = md5(serialize([SITE_ID, LANGUAGE_ID, $this->componentName, $this->templateName, $params, $additionalCacheID]));
        $this->cacheFile = self::$cacheDir . '/' . $id . '.ser';
        if (is_file($this->cacheFile) && filemtime($this->cacheFile) + $time > time()) {
            [$this->arResult, $html] = unserialize((string)file_get_contents($this->cacheFile));
            echo $html;
            self::$lastCache = 'hit';
            return false;
        }
        self::$lastCache = 'miss';
        ob_start();
        return true;
    }

    final public function endResultCache()
    {
        if ($this->cacheFile === null) {
            return;
        }
        $html = (string)ob_get_contents();
        ob_end_flush();
        @mkdir(self::$cacheDir, 0777, true);
        file_put_contents($this->cacheFile, serialize([$this->arResult, $html]));
        $this->cacheFile = null;
    }

    final public function abortResultCache()
    {
        if ($this->cacheFile !== null) {
            ob_end_flush();
            $this->cacheFile = null;
        }
    }

    /** The template's style.css is added to the page (the kernel puts it in the head), then template.php runs. */
    final public function includeComponentTemplate($templatePage = '', $customTemplatePath = '')
    {
        $folder = $this->path . '/templates/' . $this->templateName;
        if (is_file($folder . '/style.css')) {
            echo '<style>' . file_get_contents($folder . '/style.css') . '</style>';
        }
        (function (string $file, array $arParams, array $arResult, $component): void {
            include $file;
        })($folder . '/' . ($templatePage === '' ? 'template' : $templatePage) . '.php', $this->arParams, $this->arResult, $this);
        $this->endResultCache();
    }
}

/** [R main] $APPLICATION: IncludeComponent() and AuthForm(). */
class CMain
{
    /** Where <ns>/<name> components are found (the site's /local/components). */
    public function __construct(public string $componentsRoot)
    {
    }

    public function IncludeComponent($componentName, $componentTemplate, $arParams = [], $parentComponent = null, $arFunctionParams = [], $returnResult = false)
    {
        [$ns, $name] = explode(':', $componentName, 2);
        $path = $this->componentsRoot . '/' . $ns . '/' . $name;
        static $classes = [];
        if (!isset($classes[$path])) {
            $before = get_declared_classes();
            require_once $path . '/class.php';
            $classes[$path] = 'CBitrixComponent';
            foreach (array_diff(get_declared_classes(), $before) as $declared) {
                if (is_subclass_of($declared, $classes[$path])) {
                    $classes[$path] = $declared;
                }
            }
        }
        $class = $classes[$path];
        $component = new $class($parentComponent);
        $component->initComponent($componentName, $componentTemplate, $path);
        $arParams = $component->onPrepareComponentParams($arParams);
        $component->__prepareComponentParams($arParams);
        $component->arParams = $arParams;
        return $component->executeComponent();
    }

    public function AuthForm($mess)
    {
        echo '<form class="bx-auth" method="post"><p>' . htmlspecialcharsbx((string)$mess) . '</p>'
            . '<input name="USER_LOGIN" placeholder="Login"> <input name="USER_PASSWORD" type="password" placeholder="Password">'
            . ' <button type="submit">Log in</button></form>';
    }

    public function GetCurPage() { return strtok($_SERVER['REQUEST_URI'] ?? '/', '?'); }
}
